// uapi_layout_test.cc - include/uapi/linux/utcp.h compiles as C++ with the pinned layout.
#include <linux/utcp.h>

#include <cstddef>

#include <gtest/gtest.h>

static_assert(sizeof(utcp_abi_info) == 56);
static_assert(offsetof(utcp_abi_info, reserved) == 24);

TEST(UapiLayout, AbiInfoOffsets) {
  EXPECT_EQ(offsetof(utcp_abi_info, size), 0u);
  EXPECT_EQ(offsetof(utcp_abi_info, abi_version), 4u);
  EXPECT_EQ(offsetof(utcp_abi_info, flags), 20u);
  EXPECT_GE(UTCP_ABI_VERSION, 1);
}

TEST(UapiLayout, IoctlNumbersEncodeDirectionAndSize) {
  EXPECT_EQ(_IOC_SIZE(UTCP_IOC_ABI_INFO), sizeof(utcp_abi_info));
  EXPECT_EQ(_IOC_DIR(UTCP_IOC_ABI_INFO), unsigned(_IOC_READ | _IOC_WRITE));
  EXPECT_EQ(_IOC_TYPE(UTCP_IOC_ABI_INFO), unsigned(UTCP_IOC_MAGIC));
}
