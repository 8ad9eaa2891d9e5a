/* uapi_layout_c.c - include/uapi/linux/utcp.h compiles as C with the same layout as C++. */
#include <linux/utcp.h>
#include <stddef.h>
#include <stdio.h>

_Static_assert(sizeof(struct utcp_abi_info) == 56, "utcp_abi_info size");
_Static_assert(offsetof(struct utcp_abi_info, reserved) == 24, "utcp_abi_info.reserved");

int main(void)
{
	if (_IOC_SIZE(UTCP_IOC_ABI_INFO) != sizeof(struct utcp_abi_info)) {
		fprintf(stderr, "ioctl size mismatch\n");
		return 1;
	}
	return 0;
}
