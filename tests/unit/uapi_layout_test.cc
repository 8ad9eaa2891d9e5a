// uapi_layout_test.cc - include/uapi/linux/utcp.h compiles as C++ with the pinned layout.
#include <linux/utcp.h>

#include <cstddef>
#include <iterator>

#include <gtest/gtest.h>

static_assert(sizeof(utcp_abi_info) == 56);
static_assert(offsetof(utcp_abi_info, reserved) == 24);
static_assert(sizeof(utcp_ring_index) == 64, "utcp_ring_index size");
static_assert(sizeof(utcp_ring_header) == 256, "utcp_ring_header size");
static_assert(offsetof(utcp_ring_header, rx_cons) == 64, "rx_cons own cache line");
static_assert(offsetof(utcp_ring_header, tx_prod) == 128, "tx_prod own cache line");
static_assert(offsetof(utcp_ring_header, tx_cons) == 192, "tx_cons own cache line");
static_assert(sizeof(utcp_desc) == 16, "utcp_desc size");
static_assert(sizeof(utcp_ring_layout) == 56, "utcp_ring_layout size");
static_assert(sizeof(utcp_template) == 32, "utcp_template size");
static_assert(offsetof(utcp_template, local_ip) == 8, "utcp_template.local_ip");
static_assert(offsetof(utcp_template, mss) == 20, "utcp_template.mss");
static_assert(sizeof(utcp_attach) == 16, "utcp_attach size");
static_assert(sizeof(utcp_classifier) == 16, "utcp_classifier size");
static_assert(sizeof(utcp_endpoint_create) == 128, "utcp_endpoint_create size");
static_assert(offsetof(utcp_endpoint_create, id) == 48, "utcp_endpoint_create.id");
static_assert(offsetof(utcp_endpoint_create, layout) == 56, "utcp_endpoint_create.layout");
static_assert(sizeof(utcp_endpoint_template) == 40, "utcp_endpoint_template size");
static_assert(sizeof(utcp_rate_limit) == 32, "utcp_rate_limit size");
static_assert(sizeof(utcp_endpoint_id) == 8, "utcp_endpoint_id size");
static_assert(sizeof(utcp_endpoint_stats) == 112, "utcp_endpoint_stats size");
static_assert(sizeof(utcp_global_stats) == 160, "utcp_global_stats size");
static_assert(sizeof(utcp_tx_result) == 24, "utcp_tx_result size");
static_assert(sizeof(utcp_tx_wait) == 48, "utcp_tx_wait size");
static_assert(offsetof(utcp_tx_wait, timeout_ns) == 24);
static_assert(sizeof(utcp_flow_key) == 16, "utcp_flow_key size");
static_assert(sizeof(utcp_listen_key) == 8, "utcp_listen_key size");
static_assert(sizeof(utcp_endpoint_info) == 112);
static_assert(offsetof(utcp_global_stats, parked_controls) == 128);
static_assert(sizeof(utcp_persist) == 16);
static_assert(sizeof(utcp_adopt) == 24);
static_assert(offsetof(utcp_adopt, prog_id) == 12);
static_assert(sizeof(utcp_endpoint_entry) == 48);
static_assert(offsetof(utcp_endpoint_entry, tmpl) == 8);
static_assert(offsetof(utcp_endpoint_entry, tcp_flags) == 40);
static_assert(sizeof(utcp_endpoint_list) == 32);
static_assert(offsetof(utcp_endpoint_list, count) == 12);
static_assert(sizeof(utcp_endpoint_open) == 24);
static_assert(offsetof(utcp_endpoint_open, file_refs) == 12);

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

TEST(UapiLayout, ControlAndEndpointIoctlsAreDistinct) {
  const unsigned cmds[] = {UTCP_IOC_ATTACH, UTCP_IOC_DETACH, UTCP_IOC_SET_CLASSIFIER,
                           UTCP_IOC_ENDPOINT_CREATE, UTCP_IOC_SET_TEMPLATE, UTCP_IOC_SET_RATE,
                           UTCP_IOC_GLOBAL_STATS, UTCP_IOC_ENDPOINT_STATS,
                           UTCP_IOC_ENDPOINT_DESTROY, UTCP_IOC_SET_PERSIST, UTCP_IOC_ADOPT,
                           UTCP_IOC_ENDPOINT_LIST, UTCP_IOC_ENDPOINT_OPEN, UTCP_IOC_TX,
                           UTCP_IOC_EP_STATS, UTCP_IOC_EP_INFO, UTCP_IOC_EP_APP_INFO};
  for (size_t i = 0; i < std::size(cmds); ++i) {
    EXPECT_EQ(_IOC_TYPE(cmds[i]), unsigned(UTCP_IOC_MAGIC));
    for (size_t j = i + 1; j < std::size(cmds); ++j) EXPECT_NE(_IOC_NR(cmds[i]), _IOC_NR(cmds[j]));
  }
  EXPECT_EQ(_IOC_SIZE(UTCP_IOC_ENDPOINT_CREATE), sizeof(utcp_endpoint_create));
  EXPECT_EQ(_IOC_DIR(UTCP_IOC_TX), unsigned(_IOC_READ));
  // The restart ioctls write results back, except SET_PERSIST.
  EXPECT_EQ(_IOC_DIR(UTCP_IOC_SET_PERSIST), unsigned(_IOC_WRITE));
  for (unsigned c : {unsigned(UTCP_IOC_ADOPT), unsigned(UTCP_IOC_ENDPOINT_LIST), unsigned(UTCP_IOC_ENDPOINT_OPEN)})
    EXPECT_EQ(_IOC_DIR(c), unsigned(_IOC_READ | _IOC_WRITE));
  EXPECT_EQ(_IOC_SIZE(UTCP_IOC_ENDPOINT_LIST), sizeof(utcp_endpoint_list));
  EXPECT_EQ(_IOC_SIZE(UTCP_IOC_ENDPOINT_OPEN), sizeof(utcp_endpoint_open));
  EXPECT_EQ(_IOC_SIZE(UTCP_IOC_EP_APP_INFO), sizeof(utcp_app_info));
}

TEST(UapiLayout, AppInfoFitsTheHeaderPageAfterTheIndices) {
  EXPECT_EQ(sizeof(utcp_app_info), 192u);
  EXPECT_EQ(offsetof(utcp_app_info, bytes_sent), 88u);
  EXPECT_EQ(offsetof(utcp_app_info, congestion), 136u);
  EXPECT_GE(UTCP_APP_INFO_OFF, sizeof(utcp_ring_header));
  EXPECT_LE(UTCP_APP_INFO_OFF + sizeof(utcp_app_info), 4096u);
  EXPECT_EQ(UTCP_APP_INFO_OFF % 64, 0);
}
