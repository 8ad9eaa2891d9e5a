/* uapi_layout_c.c - include/uapi/linux/utcp.h compiles as C with the same layout as C++. */
#include <linux/utcp.h>
#include <stddef.h>
#include <stdio.h>

_Static_assert(sizeof(struct utcp_abi_info) == 56, "utcp_abi_info size");
_Static_assert(offsetof(struct utcp_abi_info, reserved) == 24, "utcp_abi_info.reserved");
_Static_assert(sizeof(struct utcp_ring_index) == 64, "utcp_ring_index size");
_Static_assert(sizeof(struct utcp_ring_header) == 256, "utcp_ring_header size");
_Static_assert(offsetof(struct utcp_ring_header, rx_cons) == 64, "rx_cons own cache line");
_Static_assert(offsetof(struct utcp_ring_header, tx_prod) == 128, "tx_prod own cache line");
_Static_assert(offsetof(struct utcp_ring_header, tx_cons) == 192, "tx_cons own cache line");
_Static_assert(sizeof(struct utcp_desc) == 16, "utcp_desc size");
_Static_assert(sizeof(struct utcp_ring_layout) == 56, "utcp_ring_layout size");
_Static_assert(sizeof(struct utcp_template) == 32, "utcp_template size");
_Static_assert(offsetof(struct utcp_template, local_ip) == 8, "utcp_template.local_ip");
_Static_assert(offsetof(struct utcp_template, mss) == 20, "utcp_template.mss");
_Static_assert(sizeof(struct utcp_attach) == 16, "utcp_attach size");
_Static_assert(sizeof(struct utcp_classifier) == 16, "utcp_classifier size");
_Static_assert(sizeof(struct utcp_endpoint_create) == 128, "utcp_endpoint_create size");
_Static_assert(offsetof(struct utcp_endpoint_create, id) == 48, "utcp_endpoint_create.id");
_Static_assert(offsetof(struct utcp_endpoint_create, layout) == 56, "utcp_endpoint_create.layout");
_Static_assert(sizeof(struct utcp_endpoint_template) == 40, "utcp_endpoint_template size");
_Static_assert(sizeof(struct utcp_rate_limit) == 32, "utcp_rate_limit size");
_Static_assert(sizeof(struct utcp_endpoint_id) == 8, "utcp_endpoint_id size");
_Static_assert(sizeof(struct utcp_endpoint_stats) == 112, "utcp_endpoint_stats size");
_Static_assert(sizeof(struct utcp_app_info) == 192, "utcp_app_info size");
_Static_assert(sizeof(struct utcp_global_stats) == 160, "utcp_global_stats size");
_Static_assert(sizeof(struct utcp_tx_result) == 24, "utcp_tx_result size");
_Static_assert(sizeof(struct utcp_tx_wait) == 48, "utcp_tx_wait size");
_Static_assert(offsetof(struct utcp_tx_wait, timeout_ns) == 24, "utcp_tx_wait.timeout_ns");
_Static_assert(sizeof(struct utcp_flow_key) == 16, "utcp_flow_key size");
_Static_assert(sizeof(struct utcp_listen_key) == 8, "utcp_listen_key size");
_Static_assert(offsetof(struct utcp_global_stats, parked_controls) == 128, "parked_controls");
_Static_assert(sizeof(struct utcp_persist) == 16, "utcp_persist size");
_Static_assert(sizeof(struct utcp_adopt) == 24, "utcp_adopt size");
_Static_assert(sizeof(struct utcp_endpoint_entry) == 48, "utcp_endpoint_entry size");
_Static_assert(offsetof(struct utcp_endpoint_entry, tcp_flags) == 40, "utcp_endpoint_entry.tcp_flags");
_Static_assert(sizeof(struct utcp_endpoint_list) == 32, "utcp_endpoint_list size");
_Static_assert(sizeof(struct utcp_endpoint_open) == 24, "utcp_endpoint_open size");
_Static_assert(sizeof(struct utcp_endpoint_info) == 112, "utcp_endpoint_info size");

int main(void)
{
	if (_IOC_SIZE(UTCP_IOC_ABI_INFO) != sizeof(struct utcp_abi_info)) {
		fprintf(stderr, "ioctl size mismatch\n");
		return 1;
	}
	if (_IOC_SIZE(UTCP_IOC_ENDPOINT_CREATE) != sizeof(struct utcp_endpoint_create) ||
	    _IOC_SIZE(UTCP_IOC_TX) != sizeof(struct utcp_tx_result) ||
	    _IOC_SIZE(UTCP_IOC_TX_WAIT) != sizeof(struct utcp_tx_wait)) {
		fprintf(stderr, "ioctl size mismatch\n");
		return 1;
	}
	return 0;
}
