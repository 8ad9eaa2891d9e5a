/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * utcp.h - the one contract between the utcp kernel module and user space.
 *
 * Everything here has fixed-width types and explicit padding so the layout is the
 * same for every compiler and for C and C++; the module pins it with BUILD_BUG_ON and
 * user space with static_assert. Reserved fields must be zero and are checked.
 */
#ifndef _UAPI_LINUX_UTCP_H
#define _UAPI_LINUX_UTCP_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* Bumped on every incompatible change; the library refuses a module of another version. */
#define UTCP_ABI_VERSION 1

#define UTCP_DEVICE_NAME "utcp"
#define UTCP_DEVICE_PATH "/dev/utcp"

#define UTCP_IOC_MAGIC 0xb7

/*
 * UTCP_IOC_ABI_INFO: what this module speaks. Any file on /dev/utcp answers it.
 * In: .size = sizeof(struct utcp_abi_info) as the caller knows it (so the struct can
 * grow); everything else zero. Out: the fields below.
 */
struct utcp_abi_info {
	__u32 size;		/* in: caller's sizeof; out: module's sizeof */
	__u32 abi_version;	/* out: UTCP_ABI_VERSION of the module */
	__u32 max_endpoints;	/* out: endpoints the module allows at once */
	__u32 max_ring_entries;	/* out: largest RX/TX ring, in descriptors */
	__u32 max_frame_len;	/* out: largest frame one descriptor carries */
	__u32 flags;		/* out: UTCP_ABI_F_* */
	__u64 reserved[4];	/* in: zero; out: zero */
};

#define UTCP_IOC_ABI_INFO _IOWR(UTCP_IOC_MAGIC, 0x00, struct utcp_abi_info)

#endif /* _UAPI_LINUX_UTCP_H */
