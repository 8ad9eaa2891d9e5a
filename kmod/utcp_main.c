// SPDX-License-Identifier: GPL-2.0
/*
 * utcp_main.c - the /dev/utcp misc device: module entry points, the ABI query and the
 * control file (attach, classifier, endpoint management, statistics).
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/build_bug.h>
#include <linux/capability.h>
#include <linux/bpf.h>
#include <linux/if_arp.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include <net/net_namespace.h>
#include "utcp_internal.h"

struct utcp_global utcp_global;
struct workqueue_struct *utcp_wq;

/* Attachments of closed persistent control files, waiting for UTCP_IOC_ADOPT (rtnl). */
static LIST_HEAD(utcp_parked);

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
	info.flags = UTCP_MODULE_ABI_FLAGS;
	if (copy_to_user(arg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static void utcp_ctl_release(struct kref *ref)
{
	struct utcp_ctl *ctl = container_of(ref, struct utcp_ctl, ref);

	idr_destroy(&ctl->endpoints);
	put_net(ctl->net);
	atomic64_dec(&utcp_global.live_controls);
	kfree(ctl);
}

void utcp_ctl_put(struct utcp_ctl *ctl)
{
	kref_put(&ctl->ref, utcp_ctl_release);
}

/* Caller holds rtnl. Unhooks the rx handler; after it returns no rx path sees ctl. */
static void utcp_ctl_detach_locked(struct utcp_ctl *ctl)
{
	struct net_device *dev = rtnl_dereference(ctl->dev);

	if (!dev)
		return;
	netdev_rx_handler_unregister(dev);	/* waits for rx handlers in flight */
	RCU_INIT_POINTER(ctl->dev, NULL);
	dev_put(dev);
	/* The one ref the attachment took; the file's ref keeps ctl alive here. */
	kref_put(&ctl->ref, utcp_ctl_release);
}

/*
 * What closing a control file ends, after its detach: the classifier goes and every
 * endpoint is detached (their files stay valid). Drops the reference of the file (or of
 * the parked list that inherited it). May run under rtnl: rtnl nests outside ctl->lock.
 */
static void utcp_ctl_teardown(struct utcp_ctl *ctl)
{
	struct utcp_endpoint *ep;
	struct bpf_prog *prog;
	int id;

	mutex_lock(&ctl->lock);
	ctl->closing = true;
	prog = rcu_replace_pointer(ctl->prog, NULL, lockdep_is_held(&ctl->lock));
	idr_for_each_entry(&ctl->endpoints, ep, id) {
		utcp_endpoint_unlink(ctl, ep);
		utcp_endpoint_put(ep);
	}
	mutex_unlock(&ctl->lock);
	if (prog)
		bpf_prog_put(prog);
	utcp_ctl_put(ctl);
}

/* Caller holds rtnl: a parked attachment nobody adopted ends as a closed file's would. */
static void utcp_ctl_reclaim_parked_locked(struct utcp_ctl *ctl)
{
	list_del_init(&ctl->parked);
	atomic64_dec(&utcp_global.parked_controls);
	utcp_ctl_detach_locked(ctl);
	utcp_ctl_teardown(ctl);
}

/* NETDEV_UNREGISTER: the device goes away under us; detach cleanly. */
static int utcp_netdev_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct utcp_ctl *ctl;

	if (event != NETDEV_UNREGISTER)
		return NOTIFY_DONE;
	if (rcu_access_pointer(dev->rx_handler) != utcp_rx_handler)
		return NOTIFY_DONE;
	ctl = rtnl_dereference(dev->rx_handler_data);
	/* Parked state lives only as long as its device: nobody could adopt it any more. */
	if (!list_empty(&ctl->parked))
		utcp_ctl_reclaim_parked_locked(ctl);
	else
		utcp_ctl_detach_locked(ctl);
	return NOTIFY_OK;
}

static struct notifier_block utcp_netdev_nb = {
	.notifier_call = utcp_netdev_event,
};

static int utcp_check_zero(const void *p, size_t len)
{
	return memchr_inv(p, 0, len) ? -EINVAL : 0;
}

static long utcp_ctl_attach(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_attach a;
	struct net_device *dev;
	int err;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.reserved)
		return -EINVAL;
	if (a.ifindex <= 0)
		return -ENODEV;

	rtnl_lock();
	if (rtnl_dereference(ctl->dev)) {
		err = -EISCONN;
		goto out_unlock;
	}
	dev = __dev_get_by_index(ctl->net, a.ifindex);
	if (!dev) {
		err = -ENODEV;
		goto out_unlock;
	}
	if (dev->type != ARPHRD_ETHER || dev->addr_len != ETH_ALEN) {
		err = -EOPNOTSUPP;
		goto out_unlock;
	}
	/* One rx_handler per device: a bridge/bond port or another ctl already has it. */
	kref_get(&ctl->ref);
	err = netdev_rx_handler_register(dev, utcp_rx_handler, ctl);
	if (err) {
		kref_put(&ctl->ref, utcp_ctl_release);	/* never the last: the file holds one */
		goto out_unlock;
	}
	dev_hold(dev);
	rcu_assign_pointer(ctl->dev, dev);
out_unlock:
	rtnl_unlock();
	return err;
}

static long utcp_ctl_detach(struct utcp_ctl *ctl)
{
	long err = 0;

	rtnl_lock();
	if (rtnl_dereference(ctl->dev))
		utcp_ctl_detach_locked(ctl);
	else
		err = -ENOTCONN;
	rtnl_unlock();
	return err;
}

static long utcp_ctl_set_classifier(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_classifier c;
	struct bpf_prog *prog = NULL, *old;

	if (copy_from_user(&c, arg, sizeof(c)))
		return -EFAULT;
	if (c.flags || c.reserved)
		return -EINVAL;
	if (c.prog_fd != -1) {
		if (c.prog_fd < 0)
			return -EBADF;
		prog = bpf_prog_get_type(c.prog_fd, BPF_PROG_TYPE_SOCKET_FILTER);
		if (IS_ERR(prog))
			return PTR_ERR(prog);
	}
	mutex_lock(&ctl->lock);
	old = rcu_replace_pointer(ctl->prog, prog, lockdep_is_held(&ctl->lock));
	mutex_unlock(&ctl->lock);
	/* bpf_prog_put frees after an RCU grace period: rx paths still running it are safe. */
	if (old)
		bpf_prog_put(old);
	return 0;
}

/* Looks up an endpoint of this control file by id; caller holds ctl->lock. */
static struct utcp_endpoint *utcp_ctl_find(struct utcp_ctl *ctl, u32 id)
{
	if (!id || id > UTCP_MAX_ENDPOINTS)
		return NULL;
	return idr_find(&ctl->endpoints, id);
}

static long utcp_ctl_set_template(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_endpoint_template t;
	struct utcp_endpoint *ep;
	int err;

	if (copy_from_user(&t, arg, sizeof(t)))
		return -EFAULT;
	if (t.flags)
		return -EINVAL;
	err = utcp_template_check(&t.tmpl);
	if (err)
		return err;
	mutex_lock(&ctl->lock);
	ep = utcp_ctl_find(ctl, t.id);
	if (ep) {
		/*
		 * The TX ioctl checks a whole batch against one template. A new template is a
		 * new connection (a pooled endpoint's first, or one the registry moves to
		 * another 4-tuple: kConnectReuse), so the TCP tracking starts afresh: what the
		 * last connection's frames told the wire says nothing of the next one's.
		 */
		mutex_lock(&ep->tx_lock);
		ep->tmpl = t.tmpl;
		ep->st.tcp_flags = 0;
		ep->st.tcp_snd_max = 0;
		ep->st.tcp_rcv_ack = 0;
		spin_lock_bh(&ep->rx_lock);
		WRITE_ONCE(ep->rx_tcp_flags, 0);
		WRITE_ONCE(ep->rx_fin_end, 0);
		spin_unlock_bh(&ep->rx_lock);
		mutex_unlock(&ep->tx_lock);
	}
	mutex_unlock(&ctl->lock);
	return ep ? 0 : -ENOENT;
}

static long utcp_ctl_set_rate(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_rate_limit r;
	struct utcp_endpoint *ep;

	if (copy_from_user(&r, arg, sizeof(r)))
		return -EFAULT;
	if (r.flags || r.reserved)
		return -EINVAL;
	if (r.bytes_per_sec > UTCP_MAX_RATE || r.burst_bytes > UTCP_MAX_RATE)
		return -ERANGE;
	if (r.bytes_per_sec && !r.burst_bytes)
		return -EINVAL;
	mutex_lock(&ctl->lock);
	ep = utcp_ctl_find(ctl, r.id);
	if (ep) {
		mutex_lock(&ep->tx_lock);
		ep->rate_bps = r.bytes_per_sec;
		ep->burst = r.burst_bytes;
		ep->tokens = r.burst_bytes;	/* a new bucket starts full */
		ep->tokens_ns = ktime_get_ns();
		mutex_unlock(&ep->tx_lock);
	}
	mutex_unlock(&ctl->lock);
	return ep ? 0 : -ENOENT;
}

static long utcp_global_stats(void __user *arg)
{
	struct utcp_global_stats s;

	memset(&s, 0, sizeof(s));
	s.live_endpoints = atomic64_read(&utcp_global.live_endpoints);
	s.live_ring_bytes = atomic64_read(&utcp_global.live_ring_bytes);
	s.live_controls = atomic64_read(&utcp_global.live_controls);
	s.endpoints_created = atomic64_read(&utcp_global.endpoints_created);
	s.rx_frames = atomic64_read(&utcp_global.rx_frames);
	s.rx_bytes = atomic64_read(&utcp_global.rx_bytes);
	s.rx_passed = atomic64_read(&utcp_global.rx_passed);
	s.rx_stale = atomic64_read(&utcp_global.rx_stale);
	s.rx_drops = atomic64_read(&utcp_global.rx_drops);
	s.tx_frames = atomic64_read(&utcp_global.tx_frames);
	s.tx_bytes = atomic64_read(&utcp_global.tx_bytes);
	s.tx_template_rejects = atomic64_read(&utcp_global.tx_template_rejects);
	s.tx_malformed = atomic64_read(&utcp_global.tx_malformed);
	s.classifier_runs = atomic64_read(&utcp_global.classifier_runs);
	s.classifier_sampled_runs = atomic64_read(&utcp_global.classifier_sampled_runs);
	s.classifier_sampled_ns = atomic64_read(&utcp_global.classifier_sampled_ns);
	s.parked_controls = atomic64_read(&utcp_global.parked_controls);
	s.rx_drops_nomem = atomic64_read(&utcp_global.rx_drops_nomem);
	return copy_to_user(arg, &s, sizeof(s)) ? -EFAULT : 0;
}

static long utcp_ctl_endpoint_stats(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_endpoint_stats st;
	struct utcp_endpoint *ep;

	if (copy_from_user(&st, arg, sizeof(st)))
		return -EFAULT;
	if (st.flags || utcp_check_zero(&st.rx_frames, sizeof(st) - 8))
		return -EINVAL;
	mutex_lock(&ctl->lock);
	ep = utcp_ctl_find(ctl, st.id);
	if (ep)
		utcp_endpoint_fill_stats(ep, &st);
	mutex_unlock(&ctl->lock);
	if (!ep)
		return -ENOENT;
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long utcp_ctl_endpoint_destroy(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_endpoint_id e;
	struct utcp_endpoint *ep;

	if (copy_from_user(&e, arg, sizeof(e)))
		return -EFAULT;
	if (e.flags)
		return -EINVAL;
	mutex_lock(&ctl->lock);
	ep = utcp_ctl_find(ctl, e.id);
	if (ep)
		utcp_endpoint_unlink(ctl, ep);
	mutex_unlock(&ctl->lock);
	if (!ep)
		return -ENOENT;
	utcp_endpoint_put(ep);	/* the idr's ref; the files keep theirs */
	return 0;
}

static long utcp_ctl_set_persist(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_persist p;

	if (copy_from_user(&p, arg, sizeof(p)))
		return -EFAULT;
	if (p.flags || p.reserved || p.persist > 1)
		return -EINVAL;
	rtnl_lock();	/* utcp_release reads it under rtnl */
	ctl->persist = p.persist;
	rtnl_unlock();
	return 0;
}

static long utcp_ctl_endpoint_count(struct utcp_ctl *ctl)
{
	struct utcp_endpoint *ep;
	long n = 0;
	int id;

	mutex_lock(&ctl->lock);
	idr_for_each_entry(&ctl->endpoints, ep, id)
		n++;
	mutex_unlock(&ctl->lock);
	return n;
}

/*
 * UTCP_IOC_ADOPT: a fresh file takes over a parked attachment (uapi header). Works on a
 * file that is not yet a control file, so no other thread can be using a control state
 * of this file that the adoption would replace.
 */
static long utcp_adopt(struct file *file, void __user *arg)
{
	struct net *net = current->nsproxy->net_ns;
	struct utcp_ctl *ctl, *found = NULL;
	struct bpf_prog *prog;
	struct utcp_adopt a;
	long err = -ENOENT;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.endpoints || a.prog_id || a.reserved)
		return -EINVAL;
	if (a.ifindex <= 0)
		return -ENODEV;
	if (!ns_capable(net->user_ns, CAP_NET_ADMIN))
		return -EPERM;
	if (READ_ONCE(file->private_data))
		return -EISCONN;
	/* Fault now rather than after the adoption, which cannot be undone. */
	if (copy_to_user(arg, &a, sizeof(a)))
		return -EFAULT;

	rtnl_lock();
	list_for_each_entry(ctl, &utcp_parked, parked) {
		struct net_device *dev = rtnl_dereference(ctl->dev);

		/* Parked implies attached: the notifier reclaims it when the device goes. */
		if (net_eq(ctl->net, net) && dev && dev->ifindex == a.ifindex) {
			found = ctl;
			break;
		}
	}
	if (found) {
		/* The parked list's reference becomes the file's. */
		if (cmpxchg(&file->private_data, NULL, found)) {
			err = -EISCONN;	/* another thread made it a control file meanwhile */
			found = NULL;
		} else {
			list_del_init(&found->parked);
			atomic64_dec(&utcp_global.parked_controls);
			err = 0;
		}
	}
	rtnl_unlock();
	if (!found)
		return err;

	a.endpoints = (u32)utcp_ctl_endpoint_count(found);
	mutex_lock(&found->lock);
	prog = rcu_dereference_protected(found->prog, lockdep_is_held(&found->lock));
	a.prog_id = prog ? prog->aux->id : 0;
	mutex_unlock(&found->lock);
	/* Adopted either way; a caller that unmapped its argument meanwhile learns less. */
	return copy_to_user(arg, &a, sizeof(a)) ? -EFAULT : 0;
}

/*
 * Turns a fresh /dev/utcp file into a control file, or returns the one it already is.
 * Every control ioctl needs CAP_NET_ADMIN over the caller's network namespace, also on
 * a control file inherited from a privileged process.
 */
static struct utcp_ctl *utcp_get_ctl(struct file *file)
{
	struct net *net = current->nsproxy->net_ns;
	struct utcp_ctl *ctl, *old;

	/* An existing control file answers to the namespace whose devices it drives. */
	ctl = READ_ONCE(file->private_data);
	if (ctl)
		return ns_capable(ctl->net->user_ns, CAP_NET_ADMIN) ? ctl : ERR_PTR(-EPERM);
	if (!ns_capable(net->user_ns, CAP_NET_ADMIN))
		return ERR_PTR(-EPERM);
	ctl = kzalloc(sizeof(*ctl), GFP_KERNEL);
	if (!ctl)
		return ERR_PTR(-ENOMEM);
	kref_init(&ctl->ref);
	mutex_init(&ctl->lock);
	idr_init(&ctl->endpoints);
	INIT_LIST_HEAD(&ctl->parked);
	ctl->net = get_net(net);
	/* Two threads may race to convert the same file; the loser frees its copy. */
	old = cmpxchg(&file->private_data, NULL, ctl);
	if (old) {
		put_net(ctl->net);
		kfree(ctl);
		return old;
	}
	atomic64_inc(&utcp_global.live_controls);
	return ctl;
}

static long utcp_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	struct utcp_ctl *ctl;

	if (cmd == UTCP_IOC_ABI_INFO)
		return utcp_abi_info(uarg);
	if (cmd == UTCP_IOC_ADOPT)
		return utcp_adopt(file, uarg);
	switch (cmd) {
	case UTCP_IOC_ATTACH:
	case UTCP_IOC_DETACH:
	case UTCP_IOC_SET_CLASSIFIER:
	case UTCP_IOC_ENDPOINT_CREATE:
	case UTCP_IOC_SET_TEMPLATE:
	case UTCP_IOC_SET_RATE:
	case UTCP_IOC_GLOBAL_STATS:
	case UTCP_IOC_ENDPOINT_STATS:
	case UTCP_IOC_ENDPOINT_DESTROY:
	case UTCP_IOC_SET_PERSIST:
	case UTCP_IOC_ENDPOINT_LIST:
	case UTCP_IOC_ENDPOINT_OPEN:
		break;
	default:
		return -ENOTTY;	/* includes the endpoint ioctls */
	}
	ctl = utcp_get_ctl(file);
	if (IS_ERR(ctl))
		return PTR_ERR(ctl);
	switch (cmd) {
	case UTCP_IOC_ATTACH:
		return utcp_ctl_attach(ctl, uarg);
	case UTCP_IOC_DETACH:
		return utcp_ctl_detach(ctl);
	case UTCP_IOC_SET_CLASSIFIER:
		return utcp_ctl_set_classifier(ctl, uarg);
	case UTCP_IOC_ENDPOINT_CREATE:
		return utcp_endpoint_create(ctl, uarg);
	case UTCP_IOC_SET_TEMPLATE:
		return utcp_ctl_set_template(ctl, uarg);
	case UTCP_IOC_SET_RATE:
		return utcp_ctl_set_rate(ctl, uarg);
	case UTCP_IOC_GLOBAL_STATS:
		return utcp_global_stats(uarg);
	case UTCP_IOC_ENDPOINT_STATS:
		return utcp_ctl_endpoint_stats(ctl, uarg);
	case UTCP_IOC_ENDPOINT_DESTROY:
		return utcp_ctl_endpoint_destroy(ctl, uarg);
	case UTCP_IOC_SET_PERSIST:
		return utcp_ctl_set_persist(ctl, uarg);
	case UTCP_IOC_ENDPOINT_LIST:
		return utcp_endpoint_list(ctl, uarg);
	case UTCP_IOC_ENDPOINT_OPEN:
		return utcp_endpoint_open(ctl, uarg);
	}
	return -ENOTTY;
}

static int utcp_open(struct inode *inode, struct file *file)
{
	/* misc_open stored the miscdevice here; a file is "not yet control" until used. */
	file->private_data = NULL;
	return 0;
}

static int utcp_release(struct inode *inode, struct file *file)
{
	struct utcp_ctl *ctl = file->private_data;

	if (!ctl)
		return 0;
	rtnl_lock();
	if (ctl->persist && rtnl_dereference(ctl->dev)) {
		/* The registry died or restarts: the connections live on (uapi header). */
		list_add(&ctl->parked, &utcp_parked);
		atomic64_inc(&utcp_global.parked_controls);
		rtnl_unlock();
		return 0;
	}
	utcp_ctl_detach_locked(ctl);
	rtnl_unlock();
	utcp_ctl_teardown(ctl);
	return 0;
}

static const struct file_operations utcp_fops = {
	.owner = THIS_MODULE,
	.open = utcp_open,
	.release = utcp_release,
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

static void utcp_pin_abi(void)
{
	BUILD_BUG_ON(sizeof(struct utcp_abi_info) != 56);
	BUILD_BUG_ON(sizeof(struct utcp_ring_index) != 64);
	BUILD_BUG_ON(sizeof(struct utcp_ring_header) != 256);
	BUILD_BUG_ON(offsetof(struct utcp_ring_header, rx_cons) != 64);
	BUILD_BUG_ON(offsetof(struct utcp_ring_header, tx_prod) != 128);
	BUILD_BUG_ON(offsetof(struct utcp_ring_header, tx_cons) != 192);
	BUILD_BUG_ON(sizeof(struct utcp_desc) != 16);
	BUILD_BUG_ON(sizeof(struct utcp_ring_layout) != 56);
	BUILD_BUG_ON(sizeof(struct utcp_template) != 32);
	BUILD_BUG_ON(offsetof(struct utcp_template, local_ip) != 8);
	BUILD_BUG_ON(offsetof(struct utcp_template, mss) != 20);
	BUILD_BUG_ON(sizeof(struct utcp_attach) != 16);
	BUILD_BUG_ON(sizeof(struct utcp_classifier) != 16);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_create) != 128);
	BUILD_BUG_ON(offsetof(struct utcp_endpoint_create, id) != 48);
	BUILD_BUG_ON(offsetof(struct utcp_endpoint_create, layout) != 56);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_template) != 40);
	BUILD_BUG_ON(sizeof(struct utcp_rate_limit) != 32);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_id) != 8);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_stats) != 112);
	BUILD_BUG_ON(sizeof(struct utcp_app_info) != 192);
	BUILD_BUG_ON(sizeof(struct utcp_global_stats) != 160);
	BUILD_BUG_ON(sizeof(struct utcp_tx_result) != 24);
	BUILD_BUG_ON(sizeof(struct utcp_tx_wait) != 48);
	BUILD_BUG_ON(offsetof(struct utcp_tx_wait, timeout_ns) != 24);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_info) != 112);
	BUILD_BUG_ON(sizeof(struct utcp_flow_key) != 16);
	BUILD_BUG_ON(sizeof(struct utcp_listen_key) != 8);
	BUILD_BUG_ON(sizeof(struct utcp_persist) != 16);
	BUILD_BUG_ON(sizeof(struct utcp_adopt) != 24);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_entry) != 48);
	BUILD_BUG_ON(offsetof(struct utcp_endpoint_entry, tcp_flags) != 40);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_list) != 32);
	BUILD_BUG_ON(sizeof(struct utcp_endpoint_open) != 24);
	BUILD_BUG_ON(offsetof(struct utcp_global_stats, parked_controls) != 128);
	BUILD_BUG_ON(offsetof(struct utcp_global_stats, rx_drops_nomem) != 136);
	BUILD_BUG_ON(sizeof(struct utcp_global_stats) != 160);
	BUILD_BUG_ON(UTCP_MAX_SLOT_SIZE % UTCP_SLOT_ALIGN);
}

static int __init utcp_init(void)
{
	int err;

	utcp_pin_abi();
	utcp_wq = alloc_workqueue("utcp", 0, 0);
	if (!utcp_wq)
		return -ENOMEM;
	err = register_netdevice_notifier(&utcp_netdev_nb);
	if (err)
		goto err_wq;
	err = misc_register(&utcp_misc);
	if (err)
		goto err_notifier;
	return 0;

err_notifier:
	unregister_netdevice_notifier(&utcp_netdev_nb);
err_wq:
	destroy_workqueue(utcp_wq);
	return err;
}

/*
 * Unload is only possible with no file open: control and endpoint files hold a module
 * reference through .owner, and a mapping holds its file. So parked attachments have no
 * endpoint left in their tables (an endpoint leaves when its file goes): reclaim them.
 * What can still be pending are endpoint frees waiting for a grace period: wait for
 * them, then drain.
 */
static void __exit utcp_exit(void)
{
	struct utcp_ctl *ctl, *tmp;

	misc_deregister(&utcp_misc);
	rtnl_lock();
	list_for_each_entry_safe(ctl, tmp, &utcp_parked, parked)
		utcp_ctl_reclaim_parked_locked(ctl);
	rtnl_unlock();
	unregister_netdevice_notifier(&utcp_netdev_nb);
	rcu_barrier();
	destroy_workqueue(utcp_wq);
}

module_init(utcp_init);
module_exit(utcp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("utcp: protected packet rings for user-level TCP/IP");
MODULE_VERSION("0.2");
