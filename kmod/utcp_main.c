// SPDX-License-Identifier: GPL-2.0
/*
 * utcp_main.c - the /dev/utcp misc device: module entry points and the ABI query.
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/build_bug.h>
#include <uapi/linux/utcp.h>

#define UTCP_MAX_ENDPOINTS 4096
#define UTCP_MAX_RING_ENTRIES 4096
#define UTCP_MAX_FRAME_LEN 65536

static long utcp_abi_info(void __user *arg)
{
	struct utcp_abi_info info;
	u32 size;
	int i;

	if (get_user(size, (u32 __user *)arg))
		return -EFAULT;
	/* An older caller may know a shorter struct; never less than the first version. */
	if (size < sizeof(info))
		return -EINVAL;
	if (copy_from_user(&info, arg, sizeof(info)))
		return -EFAULT;
	if (info.abi_version || info.max_endpoints || info.max_ring_entries ||
	    info.max_frame_len || info.flags)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(info.reserved); i++)
		if (info.reserved[i])
			return -EINVAL;

	memset(&info, 0, sizeof(info));
	info.size = sizeof(info);
	info.abi_version = UTCP_ABI_VERSION;
	info.max_endpoints = UTCP_MAX_ENDPOINTS;
	info.max_ring_entries = UTCP_MAX_RING_ENTRIES;
	info.max_frame_len = UTCP_MAX_FRAME_LEN;
	if (copy_to_user(arg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static long utcp_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case UTCP_IOC_ABI_INFO:
		return utcp_abi_info((void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations utcp_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = utcp_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice utcp_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = UTCP_DEVICE_NAME,
	.fops = &utcp_fops,
	.mode = 0666,
};

static int __init utcp_init(void)
{
	BUILD_BUG_ON(sizeof(struct utcp_abi_info) != 56);
	return misc_register(&utcp_misc);
}

static void __exit utcp_exit(void)
{
	misc_deregister(&utcp_misc);
}

module_init(utcp_init);
module_exit(utcp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("utcp: protected packet rings for user-level TCP/IP");
MODULE_VERSION("0.1");
