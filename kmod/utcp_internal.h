/* SPDX-License-Identifier: GPL-2.0 */
/*
 * utcp_internal.h - the module's objects: control files, endpoints, global counters.
 */
#ifndef _UTCP_INTERNAL_H
#define _UTCP_INTERNAL_H

#include <linux/atomic.h>
#include <linux/filter.h>
#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <uapi/linux/utcp.h>

/* Whether a frame that is not a bare TCP ACK lies in the RX ring between @cons and @prod. */
static inline bool utcp_rx_signal_pending(u32 signal_end, u32 cons, u32 prod)
{
	u32 d = signal_end - cons;

	return d != 0 && d <= prod - cons;
}

/* utcp_abi_info.flags: what this module does beyond the ABI version (both answers). */
#define UTCP_MODULE_ABI_FLAGS	(UTCP_ABI_F_TX_TCP_CSUM | UTCP_ABI_F_TX_SPLIT | UTCP_ABI_F_TX_WAIT)

/*
 * A control file's state. Lifetime: one kref held by the control file (passed to the
 * parked list when a persistent control file closes, and on to the file that adopts it),
 * one by the attachment, one by each endpoint it created (endpoints look up the device
 * through it when they transmit). @dev and @prog are written under rtnl / @lock and read
 * under RCU by the rx path.
 */
struct utcp_ctl {
	struct kref ref;
	struct mutex lock;		/* endpoints idr, prog, closing */
	struct net *net;		/* the creator's network namespace */
	struct net_device __rcu *dev;	/* attached device (writers hold rtnl) */
	struct bpf_prog __rcu *prog;	/* the classifier */
	struct idr endpoints;		/* id -> endpoint; readers under RCU */
	bool closing;
	atomic_t classifier_runs;	/* drives the 1-in-64 timing sample */
	bool persist;			/* park instead of detaching on close (under rtnl) */
	struct list_head parked;	/* on utcp_parked while no file owns it (under rtnl) */
};

/*
 * One endpoint. Lifetime: a kref held by the control file's idr (dropped on destroy,
 * control close, or when the endpoint file's last reference goes), one by the endpoint
 * file, one by each vma (which also pins the file through vm_file). The rx path finds it in
 * the idr under RCU without a kref; freeing therefore waits for an RCU grace period
 * (queue_rcu_work) before the ring memory goes.
 */
struct utcp_endpoint {
	struct kref ref;
	struct utcp_ctl *ctl;		/* kref held */
	u32 id;
	bool detached;			/* no more RX/TX; set under ctl->lock */
	/*
	 * The endpoint file. Valid memory while the endpoint is in ctl's idr (its release
	 * takes it out under ctl->lock before the file is freed); UTCP_IOC_ENDPOINT_OPEN
	 * takes a reference only if the count is not already zero.
	 */
	struct file *file;

	/*
	 * The shared region (layout.map_size bytes) is two kinds of memory. Everything
	 * before layout.slots_off (header page, descriptor rings) is @area, a zeroed
	 * vmalloc_user allocation made at creation. The slot area behind it is backed page
	 * by page: slot_pages[i] is the page at slots_off + i * PAGE_SIZE, NULL until the
	 * first fault of a mapping or the first RX frame touches it (utcp_slot_page), then
	 * zeroed and kept until the endpoint is freed. A short connection thus costs a few
	 * pages, not the whole ring, and the mapping installs no PTE up front.
	 */
	void *area;
	struct page **slot_pages;	/* written only by cmpxchg from NULL */
	u32 nr_slot_pages;
	struct utcp_ring_layout layout;
	struct utcp_ring_header *hdr;
	struct utcp_desc *rx_desc;
	struct utcp_desc *tx_desc;

	/* RX side, written by the rx handler (softirq) under rx_lock. */
	spinlock_t rx_lock;
	u32 rx_prod;			/* shadow of hdr->rx_prod */
	/*
	 * Index of the frame that went into slot 0: reset to rx_prod whenever a frame finds
	 * the ring drained, so frame rx_prod uses slot (rx_prod - rx_base) & mask and a
	 * connection that keeps up touches the first slots only (see utcp_deliver).
	 */
	u32 rx_base;
	u32 rx_tcp_flags;		/* UTCP_EPT_PEER_FIN, UTCP_EPT_FIN_ACKED */
	u32 rx_fin_end;			/* sequence number after the peer's FIN */
	u32 rx_signal_end;		/* 1 + index of the last frame not a bare TCP ACK */
	wait_queue_head_t wq;

	/* TX side, under tx_lock (the TX ioctl, template and rate changes). */
	struct mutex tx_lock;
	u32 tx_cons;			/* shadow of hdr->tx_cons */
	struct utcp_template tmpl;
	u64 rate_bps;			/* 0 = unlimited */
	u64 burst;
	u64 tokens;
	u64 tokens_ns;			/* when tokens was last refilled */

	/* Counters: RX ones under rx_lock, TX ones under tx_lock; read racily. */
	struct utcp_endpoint_stats st;

	struct rcu_work free_work;
};

/* Global counters, all atomic64 so any context may bump them. */
struct utcp_global {
	atomic64_t live_endpoints;
	atomic64_t live_ring_bytes;
	atomic64_t live_controls;
	atomic64_t endpoints_created;
	atomic64_t rx_frames;
	atomic64_t rx_bytes;
	atomic64_t rx_passed;
	atomic64_t rx_stale;
	atomic64_t rx_drops;
	atomic64_t tx_frames;
	atomic64_t tx_bytes;
	atomic64_t tx_template_rejects;
	atomic64_t tx_malformed;
	atomic64_t classifier_runs;
	atomic64_t classifier_sampled_runs;
	atomic64_t classifier_sampled_ns;
	atomic64_t parked_controls;
	atomic64_t rx_drops_nomem;
};

extern struct utcp_global utcp_global;
extern struct workqueue_struct *utcp_wq;

/* utcp_endpoint.c */
int utcp_endpoint_create(struct utcp_ctl *ctl, void __user *arg);
int utcp_endpoint_open(struct utcp_ctl *ctl, void __user *arg);
int utcp_endpoint_list(struct utcp_ctl *ctl, void __user *arg);
void utcp_endpoint_unlink(struct utcp_ctl *ctl, struct utcp_endpoint *ep);
void utcp_endpoint_put(struct utcp_endpoint *ep);
int utcp_template_check(const struct utcp_template *t);
void utcp_endpoint_fill_stats(struct utcp_endpoint *ep, struct utcp_endpoint_stats *st);
void utcp_ctl_put(struct utcp_ctl *ctl);
struct page *utcp_slot_page(struct utcp_endpoint *ep, u32 idx, gfp_t gfp);

/* utcp_rx.c */
rx_handler_result_t utcp_rx_handler(struct sk_buff **pskb);

#endif /* _UTCP_INTERNAL_H */
