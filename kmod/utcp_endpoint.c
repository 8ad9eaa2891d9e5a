// SPDX-License-Identifier: GPL-2.0
/*
 * utcp_endpoint.c - endpoint files: pinned rings (mmap, slot pages backed on first use),
 * poll, and the template-checked transmit ioctl.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <net/ip.h>
#include <net/tcp.h>
#include "utcp_internal.h"

/*
 * The page of the slot area at slots_off + idx * PAGE_SIZE. A missing page is allocated
 * zeroed with @gfp (0: do not allocate, return NULL) and published with cmpxchg, so an
 * RX frame and a fault of a mapping racing for the same page end with the same page
 * (the loser frees its own). Returns NULL when there is none and none could be had.
 */
struct page *utcp_slot_page(struct utcp_endpoint *ep, u32 idx, gfp_t gfp)
{
	struct page *page, *old;

	if (WARN_ON_ONCE(idx >= ep->nr_slot_pages))
		return NULL;
	/* Pairs with the cmpxchg below: a published page is seen zeroed. */
	page = smp_load_acquire(&ep->slot_pages[idx]);
	if (page || !gfp)
		return page;
	page = alloc_page(gfp | __GFP_ZERO | __GFP_NOWARN);
	if (!page)
		return NULL;
	old = cmpxchg(&ep->slot_pages[idx], NULL, page);
	if (old) {
		__free_page(page);
		return old;
	}
	atomic64_add(PAGE_SIZE, &utcp_global.live_ring_bytes);
	return page;
}

/* Frees the slot pages ever used, the page array and the header/descriptor area. */
static void utcp_endpoint_free_rings(struct utcp_endpoint *ep)
{
	u32 i, used = 0;

	for (i = 0; ep->slot_pages && i < ep->nr_slot_pages; i++) {
		if (ep->slot_pages[i]) {
			__free_page(ep->slot_pages[i]);
			used++;
		}
	}
	atomic64_sub((u64)used * PAGE_SIZE + ep->layout.slots_off, &utcp_global.live_ring_bytes);
	kvfree(ep->slot_pages);
	vfree(ep->area);
}

/*
 * Copies len bytes of the slot area at @off (an offset in the mapping, at least
 * slots_off, range-checked by the caller) to @dst, a page at a time. A page nobody has
 * used reads as zeroes -- user space never wrote it -- and is not allocated for that.
 */
static void utcp_slots_read(struct utcp_endpoint *ep, u64 off, u8 *dst, u32 len)
{
	u64 rel = off - ep->layout.slots_off;

	while (len) {
		u32 in = offset_in_page(rel), n = min_t(u32, len, PAGE_SIZE - in);
		struct page *page = utcp_slot_page(ep, rel >> PAGE_SHIFT, 0);

		if (page) {
			const u8 *src = kmap_local_page(page);

			memcpy(dst, src + in, n);
			kunmap_local(src);
		} else {
			memset(dst, 0, n);
		}
		dst += n;
		rel += n;
		len -= n;
	}
}

static void utcp_endpoint_free_work(struct work_struct *work)
{
	struct utcp_endpoint *ep =
		container_of(to_rcu_work(work), struct utcp_endpoint, free_work);

	utcp_endpoint_free_rings(ep);
	atomic64_dec(&utcp_global.live_endpoints);
	utcp_ctl_put(ep->ctl);
	kfree(ep);
}

static void utcp_endpoint_release(struct kref *ref)
{
	struct utcp_endpoint *ep = container_of(ref, struct utcp_endpoint, ref);

	/* An rx path may still hold ep from an RCU idr lookup: free after a grace period. */
	INIT_RCU_WORK(&ep->free_work, utcp_endpoint_free_work);
	queue_rcu_work(utcp_wq, &ep->free_work);
}

void utcp_endpoint_put(struct utcp_endpoint *ep)
{
	kref_put(&ep->ref, utcp_endpoint_release);
}

/*
 * Takes ep out of its control file's table (the rx path stops finding it) and marks it
 * detached, waking pollers with EPOLLHUP. Caller holds ctl->lock and then drops the
 * table's reference with utcp_endpoint_put() outside the lock.
 */
void utcp_endpoint_unlink(struct utcp_ctl *ctl, struct utcp_endpoint *ep)
{
	idr_remove(&ctl->endpoints, ep->id);
	WRITE_ONCE(ep->detached, true);
	wake_up_interruptible_poll(&ep->wq, EPOLLHUP | EPOLLERR);
}

int utcp_template_check(const struct utcp_template *t)
{
	bool listener = t->flags & UTCP_TMPL_F_LISTENER;

	if (t->flags & ~UTCP_TMPL_F_LISTENER || t->reserved0 || t->reserved1)
		return -EINVAL;
	if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
		return -EPROTONOSUPPORT;
	if (!t->local_ip || !t->local_port || is_multicast_ether_addr(t->src_mac))
		return -EINVAL;
	/* A connected template names its peer; a listener names none. */
	if (listener != (!t->remote_ip && !t->remote_port))
		return -EINVAL;
	if (listener ? false : (!t->remote_ip || !t->remote_port))
		return -EINVAL;
	return 0;
}

void utcp_endpoint_fill_stats(struct utcp_endpoint *ep, struct utcp_endpoint_stats *st)
{
	*st = ep->st;
	st->tcp_flags |= READ_ONCE(ep->rx_tcp_flags);
	st->id = ep->id;
	st->flags = READ_ONCE(ep->detached) ? UTCP_EPF_DETACHED : 0;
	st->ring_bytes = ep->layout.map_size;
	st->file_refs = 0;
}

/* ---- mmap ---- */

static void utcp_vma_open(struct vm_area_struct *vma)
{
	struct utcp_endpoint *ep = vma->vm_private_data;

	kref_get(&ep->ref);
}

static void utcp_vma_close(struct vm_area_struct *vma)
{
	utcp_endpoint_put(vma->vm_private_data);
}

/*
 * A page of the mapping is touched for the first time: hand the core the page for that
 * offset, with a reference it drops when the PTE goes (as sound's PCM buffers and relay
 * files do). Header and descriptor pages come from the vmalloc area; a slot page is
 * allocated, zeroed, on its first use. The pages are ordinary refcounted pages and the
 * mapping is shared, so user space writes the very page the module reads (no COW).
 */
static vm_fault_t utcp_vma_fault(struct vm_fault *vmf)
{
	struct utcp_endpoint *ep = vmf->vma->vm_private_data;
	unsigned long head = ep->layout.slots_off >> PAGE_SHIFT;
	struct page *page;

	if (vmf->pgoff < head)
		page = vmalloc_to_page((u8 *)ep->area + (vmf->pgoff << PAGE_SHIFT));
	else if (vmf->pgoff - head < ep->nr_slot_pages)
		page = utcp_slot_page(ep, vmf->pgoff - head, GFP_KERNEL);
	else
		return VM_FAULT_SIGBUS;	/* cannot happen: the vma is the whole region */
	if (!page)
		return VM_FAULT_OOM;
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct utcp_vm_ops = {
	.open = utcp_vma_open,
	.close = utcp_vma_close,
	.fault = utcp_vma_fault,
};

/*
 * Installs the pages that exist already: the header and descriptor pages, which every
 * user touches at once, and the slot pages backed so far (at least the first RX and TX
 * slot's, see utcp_endpoint_create). Under emulation a page fault costs tens of
 * microseconds; a connection's setup used to take ten of them. Pages that do not exist
 * yet are still left to utcp_vma_fault. vm_insert_page marks the vma VM_MIXEDMAP (as
 * remap_vmalloc_range did for the whole region before slots were backed lazily); a
 * failure here only leaves that page to the fault handler.
 */
static void utcp_map_present(struct utcp_endpoint *ep, struct vm_area_struct *vma)
{
	unsigned long head = ep->layout.slots_off >> PAGE_SHIFT, i;
	struct page *page;

	for (i = 0; i < head; i++)
		if (vm_insert_page(vma, vma->vm_start + (i << PAGE_SHIFT),
				   vmalloc_to_page((u8 *)ep->area + (i << PAGE_SHIFT))))
			return;
	for (i = 0; i < ep->nr_slot_pages; i++) {
		page = utcp_slot_page(ep, i, 0);
		if (page && vm_insert_page(vma, vma->vm_start + ((head + i) << PAGE_SHIFT), page))
			return;
	}
}

static int utcp_ep_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct utcp_endpoint *ep = file->private_data;
	const vm_flags_t flags = VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY;

	/* The whole region or nothing, shared: partial maps would only confuse offsets. */
	if (vma->vm_pgoff != 0 || vma->vm_end - vma->vm_start != ep->layout.map_size)
		return -EINVAL;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	/*
	 * No mremap growth, no core dumps of the rings, and a fork does not inherit them.
	 * Not VM_PFNMAP/VM_IO: the pages are normal, refcounted ones.
	 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
	vma->vm_private_data = ep;
	vma->vm_ops = &utcp_vm_ops;
	kref_get(&ep->ref);
	utcp_map_present(ep, vma);
	return 0;
}

/* ---- poll ---- */

static __poll_t utcp_ep_poll(struct file *file, poll_table *wait)
{
	struct utcp_endpoint *ep = file->private_data;
	__poll_t mask = 0;
	u32 cons, tx_prod;

	poll_wait(file, &ep->wq, wait);
	/*
	 * Pairs with the smp_mb() in the rx path between publishing rx_prod and reading
	 * rx_cons: either the producer sees our consumer's last rx_cons and wakes us, or
	 * we see its rx_prod here.
	 */
	smp_mb();
	if (READ_ONCE(ep->detached))
		return EPOLLHUP | EPOLLERR;
	cons = READ_ONCE(ep->hdr->rx_cons.value);
	if (READ_ONCE(ep->rx_prod) != cons)
		mask |= EPOLLIN | EPOLLRDNORM;
	tx_prod = READ_ONCE(ep->hdr->tx_prod.value);
	if (tx_prod - READ_ONCE(ep->hdr->tx_cons.value) < ep->layout.tx_entries)
		mask |= EPOLLOUT | EPOLLWRNORM;
	return mask;
}

/* ---- transmit ---- */

/* Refills the token bucket and takes len bytes from it; false when over budget. */
static bool utcp_rate_take(struct utcp_endpoint *ep, u32 len, u64 now)
{
	u64 elapsed, add;

	if (!ep->rate_bps)
		return true;
	elapsed = now - ep->tokens_ns;
	ep->tokens_ns = now;
	/* rate, burst <= 2^40 and the remainder < 1e9, so nothing here overflows. */
	if (elapsed >= NSEC_PER_SEC * 1024ull)
		add = ep->burst;
	else
		add = div64_u64(elapsed, NSEC_PER_SEC) * ep->rate_bps +
		      mul_u64_u64_div_u64(elapsed % NSEC_PER_SEC, ep->rate_bps, NSEC_PER_SEC);
	ep->tokens = min(ep->tokens + add, ep->burst);
	if (ep->tokens < len)
		return false;
	ep->tokens -= len;
	return true;
}

/*
 * Checks a copied frame against the template. Returns 0, -EINVAL (malformed) or
 * -EPERM (a header field differs from the template). Sets the header offsets.
 */
/*
 * Remembers the sequence space a connection endpoint's frames used (RFC 9293 §3.4:
 * SEG.LEN counts SYN and FIN), so the registry can reset or finish the connection
 * after its application is gone. Called with tx_lock held, on a checked header.
 */
static void utcp_tx_track(struct utcp_endpoint *ep, const struct tcphdr *th, u32 payload)
{
	u32 end = ntohl(th->seq) + payload + th->syn + th->fin;

	if (!(ep->st.tcp_flags & UTCP_EPT_SENT) || (s32)(end - ep->st.tcp_snd_max) > 0)
		ep->st.tcp_snd_max = end;
	ep->st.tcp_flags |= UTCP_EPT_SENT;
	if (th->ack) {
		ep->st.tcp_rcv_ack = ntohl(th->ack_seq);
		ep->st.tcp_flags |= UTCP_EPT_ACK;
	}
	if (th->syn)
		ep->st.tcp_flags |= UTCP_EPT_SYN;
	if (th->fin && !(ep->st.tcp_flags & UTCP_EPT_FIN)) {
		u32 rx = READ_ONCE(ep->rx_tcp_flags);

		/* rx_fin_end is written before the flag that says it is valid (utcp_rx_track). */
		smp_rmb();
		if (th->ack && (rx & UTCP_EPT_PEER_FIN) &&
		    (s32)(ntohl(th->ack_seq) - READ_ONCE(ep->rx_fin_end)) >= 0)
			ep->st.tcp_flags |= UTCP_EPT_LAST_ACK;
		ep->st.tcp_flags |= UTCP_EPT_FIN;
	}
	if (th->rst)
		ep->st.tcp_flags |= UTCP_EPT_RST;
}

static int utcp_tx_check(struct utcp_endpoint *ep, struct sk_buff *skb)
{
	const struct utcp_template *t = &ep->tmpl;
	bool listener = t->flags & UTCP_TMPL_F_LISTENER;
	const struct ethhdr *eth;
	const struct iphdr *iph;
	u32 len = skb->len, ihl, l4len;

	if (len < ETH_HLEN + sizeof(struct iphdr))
		return -EINVAL;
	eth = (const struct ethhdr *)skb->data;
	if (!ether_addr_equal(eth->h_source, t->src_mac))
		return -EPERM;
	if (eth->h_proto != htons(ETH_P_IP))
		return -EPERM;
	iph = (const struct iphdr *)(skb->data + ETH_HLEN);
	ihl = iph->ihl * 4;
	/* RFC 791 §3.1: IHL counts 32-bit words, at least 5; total length covers the datagram. */
	if (iph->version != 4 || ihl < sizeof(struct iphdr) || ETH_HLEN + ihl > len)
		return -EINVAL;
	if (ntohs(iph->tot_len) != len - ETH_HLEN)
		return -EINVAL;
	/* Fragments would let a later fragment carry ports the template never saw. */
	if (iph->frag_off & htons(IP_MF | IP_OFFSET))
		return -EPERM;
	if (iph->protocol != t->proto || iph->saddr != t->local_ip)
		return -EPERM;
	if (!listener && iph->daddr != t->remote_ip)
		return -EPERM;
	l4len = len - ETH_HLEN - ihl;
	if (t->proto == IPPROTO_TCP) {
		const struct tcphdr *th = (const void *)((const u8 *)iph + ihl);

		/* RFC 9293 §3.1: Data Offset counts 32-bit words, at least 5. */
		if (l4len < sizeof(*th) || th->doff * 4 < sizeof(*th) || th->doff * 4 > l4len)
			return -EINVAL;
		if (th->source != t->local_port)
			return -EPERM;
		if (!listener && th->dest != t->remote_port)
			return -EPERM;
		if (!listener)
			utcp_tx_track(ep, th, l4len - th->doff * 4);
	} else {
		const struct udphdr *uh = (const void *)((const u8 *)iph + ihl);

		/* RFC 768: Length is the header plus data. */
		if (l4len < sizeof(*uh) || ntohs(uh->len) != l4len)
			return -EINVAL;
		if (uh->source != t->local_port)
			return -EPERM;
		if (!listener && uh->dest != t->remote_port)
			return -EPERM;
	}
	skb_reset_mac_header(skb);
	skb_set_network_header(skb, ETH_HLEN);
	skb_set_transport_header(skb, ETH_HLEN + ihl);
	return 0;
}

/*
 * Every TCP frame leaves with CHECKSUM_PARTIAL: the TCP checksum field gets the
 * pseudo-header sum, and the NIC (or the kernel, validate_xmit_skb -> skb_checksum_help,
 * for a device that cannot) completes it over the copy we send -- so user space need
 * not sum what we copy anyway (UTCP_ABI_F_TX_TCP_CSUM), and a checksum it got wrong
 * cannot reach the wire either.
 */
static void utcp_tx_csum_partial(struct sk_buff *skb)
{
	struct iphdr *iph = ip_hdr(skb);
	struct tcphdr *th = tcp_hdr(skb);

	skb->ip_summed = CHECKSUM_PARTIAL;
	skb->csum_start = skb_transport_header(skb) - skb->head;
	skb->csum_offset = offsetof(struct tcphdr, check);
	th->check = ~tcp_v4_check(skb->len - skb_transport_offset(skb), iph->saddr, iph->daddr, 0);
}

/*
 * A frame longer than the MTU leaves as one TCP GSO frame: the stack below (or the
 * NIC) cuts it into mss-sized segments and fills each checksum, as for af_packet's
 * virtio_net_hdr path (utcp_tx_csum_partial has set the pseudo-header sum).
 */
static int utcp_tx_gso(struct utcp_endpoint *ep, struct sk_buff *skb, struct net_device *dev)
{
	struct tcphdr *th = tcp_hdr(skb);
	u32 hlen = skb_transport_offset(skb) + th->doff * 4;
	u32 payload = skb->len - hlen;
	u32 mss = ep->tmpl.mss;

	if (ep->tmpl.proto != IPPROTO_TCP)
		return -EMSGSIZE;	/* UDP has no segmentation offload here */
	if (!mss)
		mss = dev->mtu - (hlen - ETH_HLEN);
	if (mss < 8 || hlen - ETH_HLEN + mss > dev->mtu || !payload)
		return -EMSGSIZE;
	skb_shinfo(skb)->gso_size = mss;
	skb_shinfo(skb)->gso_type = SKB_GSO_TCPV4;
	skb_shinfo(skb)->gso_segs = DIV_ROUND_UP(payload, mss);
	return 0;
}

/* Builds, checks and sends one frame. Returns 0 (sent), -EAGAIN/-ENOBUFS (stop, keep
 * the descriptor queued) or a refusal errno (descriptor completed with an error). */
static int utcp_tx_one(struct utcp_endpoint *ep, struct net_device *dev,
		       struct utcp_desc *desc, u64 now)
{
	const struct utcp_ring_layout *l = &ep->layout;
	u64 area_end = (u64)l->slots_off + (u64)l->slot_count * l->slot_size;
	u32 offset, len, flags, reserved, hlen;
	struct sk_buff *skb;
	u8 *data;
	int err, rc;

	/* Each user-written field is read once; only these copies are used below. */
	offset = READ_ONCE(desc->offset);
	len = READ_ONCE(desc->len);
	flags = READ_ONCE(desc->flags);
	reserved = READ_ONCE(desc->reserved);
	if (len > UTCP_MAX_FRAME_LEN || len < ETH_HLEN || offset < l->slots_off)
		return -EINVAL;
	if (flags & UTCP_TXF_SPLIT) {
		/*
		 * Headers at offset, payload at reserved (uapi UTCP_TXF_SPLIT): both pieces
		 * inside the slot area, nothing but the split bit and the header length set.
		 */
		hlen = UTCP_TXF_HDR_LEN(flags);
		if ((flags & ~(UTCP_TXF_SPLIT | (0xffffu << UTCP_TXF_HDR_SHIFT))) ||
		    hlen < ETH_HLEN || hlen > UTCP_TXF_HDR_MAX || hlen >= len ||
		    (u64)offset + hlen > area_end || reserved < l->slots_off ||
		    (u64)reserved + (len - hlen) > area_end)
			return -EINVAL;
	} else {
		if (flags || reserved || (u64)offset + len > area_end)
			return -EINVAL;
		hlen = len;
	}
	if (!utcp_rate_take(ep, len, now))
		return -EAGAIN;

	skb = alloc_skb(LL_RESERVED_SPACE(dev) + len + dev->needed_tailroom,
			GFP_KERNEL | __GFP_NOWARN);
	if (!skb) {
		ep->tokens += len;
		return -ENOBUFS;
	}
	skb_reserve(skb, LL_RESERVED_SPACE(dev));
	/*
	 * Copy first, check the copy: user space may rewrite the slot meanwhile. A split
	 * frame's payload is copied straight behind its headers, so the copy is the same
	 * linear frame a contiguous descriptor gives, and the check below sees only it.
	 */
	data = skb_put(skb, len);
	utcp_slots_read(ep, offset, data, hlen);
	if (hlen < len)
		utcp_slots_read(ep, reserved, data + hlen, len - hlen);
	err = utcp_tx_check(ep, skb);
	if (!err && ep->tmpl.proto == IPPROTO_TCP)
		utcp_tx_csum_partial(skb);
	if (!err && len > dev->mtu + ETH_HLEN)
		err = utcp_tx_gso(ep, skb, dev);
	if (err) {
		kfree_skb(skb);
		return err;
	}
	skb->dev = dev;
	skb->protocol = htons(ETH_P_IP);
	rc = dev_queue_xmit(skb);	/* consumes skb whatever it returns */
	if (rc != NET_XMIT_SUCCESS && rc != NET_XMIT_CN) {
		ep->st.tx_dev_errors++;
		return 0;	/* it left our hands like a frame lost on the wire */
	}
	ep->st.tx_frames++;
	ep->st.tx_bytes += len;
	atomic64_inc(&utcp_global.tx_frames);
	atomic64_add(len, &utcp_global.tx_bytes);
	return 0;
}

/* UTCP_IOC_TX's work; @res (zeroed by the caller) receives the details. */
static long utcp_ep_tx_batch(struct utcp_endpoint *ep, struct utcp_tx_result *res)
{
	struct net_device *dev;
	u32 prod, cons, mask = ep->layout.tx_entries - 1;
	long ret;
	u64 now;

	mutex_lock(&ep->tx_lock);
	if (READ_ONCE(ep->detached)) {
		ret = -ENOTCONN;
		goto out_unlock;
	}
	rcu_read_lock();
	dev = rcu_dereference(ep->ctl->dev);
	if (dev)
		dev_hold(dev);
	rcu_read_unlock();
	if (!dev) {
		ret = -ENOTCONN;
		goto out_unlock;
	}
	if (!netif_running(dev) || !netif_carrier_ok(dev)) {
		ret = -ENETDOWN;
		goto out_put;
	}

	/* Acquire: the descriptors user space wrote before publishing tx_prod are visible. */
	prod = smp_load_acquire(&ep->hdr->tx_prod.value);
	cons = ep->tx_cons;
	if (prod - cons > ep->layout.tx_entries) {
		/* A producer index no ring could have: refuse the call, trust nothing. */
		ep->st.tx_malformed++;
		atomic64_inc(&utcp_global.tx_malformed);
		ret = -EINVAL;
		goto out_put;
	}
	now = ktime_get_ns();
	while (cons != prod) {
		struct utcp_desc *desc = &ep->tx_desc[cons & mask];
		int err = utcp_tx_one(ep, dev, desc, now);

		if (err == -EAGAIN || err == -ENOBUFS) {
			if (err == -EAGAIN)
				ep->st.tx_rate_limited++;
			if (!res->first_error && !res->sent)
				res->first_error = err;
			break;
		}
		if (err) {
			res->refused++;
			if (!res->first_error)
				res->first_error = err;
			if (err == -EPERM) {
				ep->st.tx_template_rejects++;
				atomic64_inc(&utcp_global.tx_template_rejects);
				WRITE_ONCE(desc->flags, UTCP_TXF_ERR_TEMPLATE);
			} else {
				ep->st.tx_malformed++;
				atomic64_inc(&utcp_global.tx_malformed);
				WRITE_ONCE(desc->flags, UTCP_TXF_ERR_MALFORMED);
			}
		} else {
			res->sent++;
			WRITE_ONCE(desc->flags, UTCP_TXF_SENT);
		}
		cons++;
		/* A full ring of 64 KiB frames is a lot of copying: let others run. */
		if (!(cons % 64))
			cond_resched();
	}
	res->pending = prod - cons;
	ep->tx_cons = cons;
	/* Release: the status flags above are visible before the slots go back to the user. */
	smp_store_release(&ep->hdr->tx_cons.value, cons);
	ret = res->sent ? res->sent : res->first_error;
out_put:
	dev_put(dev);
out_unlock:
	mutex_unlock(&ep->tx_lock);
	return ret;
}

static long utcp_ep_tx(struct utcp_endpoint *ep, void __user *arg)
{
	struct utcp_tx_result res = {};
	long ret = utcp_ep_tx_batch(ep, &res);

	if (arg && copy_to_user(arg, &res, sizeof(res)))
		return -EFAULT;
	return ret;
}

static bool utcp_ep_rx_ready(struct utcp_endpoint *ep)
{
	return READ_ONCE(ep->rx_prod) != READ_ONCE(ep->hdr->rx_cons.value);
}

/* What ends a UTCP_IOC_TX_WAIT sleep: any frame, or with UTCP_TXW_DATA one not a bare ACK. */
static bool utcp_ep_wait_done(struct utcp_endpoint *ep, u32 flags)
{
	if (READ_ONCE(ep->detached))
		return true;
	if (!(flags & UTCP_TXW_DATA))
		return utcp_ep_rx_ready(ep);
	return utcp_rx_signal_pending(READ_ONCE(ep->rx_signal_end), READ_ONCE(ep->hdr->rx_cons.value),
				      READ_ONCE(ep->rx_prod));
}

/*
 * UTCP_IOC_TX_WAIT: the batch, then asleep on the same wait queue poll uses until the RX
 * path delivers a frame (it wakes when the ring goes from drained to non-empty), the
 * timeout, a signal, or a detach. The condition is checked after prepare_to_wait's
 * barrier, which pairs with the smp_mb() in the RX path between publishing rx_prod and
 * reading rx_cons, as in utcp_ep_poll: either it sees our rx_cons and wakes us, or we
 * see its rx_prod.
 */
static long utcp_ep_tx_wait(struct utcp_endpoint *ep, void __user *arg)
{
	struct utcp_tx_wait w;
	long ret;

	if (copy_from_user(&w, arg, sizeof(w)))
		return -EFAULT;
	if ((w.flags & ~UTCP_TXW_DATA) || w.reserved || w.timeout_ns < -1)
		return -EINVAL;
	memset(&w.tx, 0, sizeof(w.tx));
	ret = utcp_ep_tx_batch(ep, &w.tx);
	if (ret >= 0 && w.timeout_ns != 0 && !utcp_ep_wait_done(ep, w.flags)) {
		/* A signal or the timeout ends the sleep; rx_ready tells the caller which. */
		if (w.timeout_ns < 0)
			(void)wait_event_interruptible(ep->wq, utcp_ep_wait_done(ep, w.flags));
		else
			(void)wait_event_interruptible_hrtimeout(ep->wq, utcp_ep_wait_done(ep, w.flags),
								 ns_to_ktime(w.timeout_ns));
	}
	w.rx_ready = utcp_ep_rx_ready(ep);
	if (copy_to_user(arg, &w, sizeof(w)))
		return -EFAULT;
	return ret;
}

/*
 * A stable copy of what the application published in its header page (uapi
 * UTCP_IOC_EP_APP_INFO). The bytes are user-written: copied, never interpreted, except
 * the seqlock word and the magic that say whether there is a stable copy to give.
 */
static long utcp_ep_app_info(struct utcp_endpoint *ep, void __user *arg)
{
	const u8 *src = (const u8 *)ep->area + ep->layout.header_off + UTCP_APP_INFO_OFF;
	const u32 *seqp = (const u32 *)src;
	struct utcp_app_info info;
	int tries;

	BUILD_BUG_ON(UTCP_APP_INFO_OFF < sizeof(struct utcp_ring_header));
	BUILD_BUG_ON(UTCP_APP_INFO_OFF + sizeof(struct utcp_app_info) > PAGE_SIZE);
	for (tries = 0; tries < 8; tries++) {
		u32 seq = READ_ONCE(*seqp);

		if (seq & 1) {
			cpu_relax();
			continue;
		}
		smp_rmb();
		memcpy(&info, src, sizeof(info));
		smp_rmb();
		if (READ_ONCE(*seqp) != seq)
			continue;
		if (info.magic != UTCP_APP_INFO_MAGIC)
			return -ENODATA;
		info.seq = seq;
		return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
	}
	return -EAGAIN;
}

static long utcp_ep_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct utcp_endpoint *ep = file->private_data;
	struct utcp_endpoint_stats st;

	switch (cmd) {
	case UTCP_IOC_TX:
		return utcp_ep_tx(ep, (void __user *)arg);
	case UTCP_IOC_TX_WAIT:
		return utcp_ep_tx_wait(ep, (void __user *)arg);
	case UTCP_IOC_EP_STATS:
		utcp_endpoint_fill_stats(ep, &st);
		st.file_refs = (u32)min_t(long, file_count(file), U32_MAX);
		return copy_to_user((void __user *)arg, &st, sizeof(st)) ? -EFAULT : 0;
	case UTCP_IOC_EP_INFO: {
		struct utcp_endpoint_info info = {
			.id = ep->id,
			.flags = READ_ONCE(ep->detached) ? UTCP_EPF_DETACHED : 0,
			.layout = ep->layout,
		};

		mutex_lock(&ep->tx_lock);
		info.tmpl = ep->tmpl;
		mutex_unlock(&ep->tx_lock);
		return copy_to_user((void __user *)arg, &info, sizeof(info)) ? -EFAULT : 0;
	}
	case UTCP_IOC_EP_APP_INFO:
		return utcp_ep_app_info(ep, (void __user *)arg);
	case UTCP_IOC_ABI_INFO: {
		/* Answered here too so a library holding only an endpoint can check the ABI. */
		struct utcp_abi_info info = {
			.size = sizeof(info),
			.abi_version = UTCP_ABI_VERSION,
			.max_endpoints = UTCP_MAX_ENDPOINTS,
			.max_ring_entries = UTCP_MAX_RING_ENTRIES,
			.max_frame_len = UTCP_MAX_FRAME_LEN,
			.flags = UTCP_MODULE_ABI_FLAGS,
		};
		return copy_to_user((void __user *)arg, &info, sizeof(info)) ? -EFAULT : 0;
	}
	default:
		return -ENOTTY;	/* includes every control ioctl: no template changes here */
	}
}

/*
 * The last fd (and, through vm_file, the last mapping) is gone: nobody can use the
 * rings any more, so the endpoint leaves its control file's table now rather than
 * filling a ring nobody reads. A registry that wants to inherit a connection keeps a
 * dup of the fd.
 */
static int utcp_ep_release(struct inode *inode, struct file *file)
{
	struct utcp_endpoint *ep = file->private_data;
	struct utcp_ctl *ctl = ep->ctl;
	bool drop_idr_ref = false;

	mutex_lock(&ctl->lock);
	if (ep->id && idr_find(&ctl->endpoints, ep->id) == ep) {
		utcp_endpoint_unlink(ctl, ep);
		drop_idr_ref = true;
	}
	mutex_unlock(&ctl->lock);
	if (drop_idr_ref)
		utcp_endpoint_put(ep);
	utcp_endpoint_put(ep);
	return 0;
}

static const struct file_operations utcp_ep_fops = {
	.owner = THIS_MODULE,
	.release = utcp_ep_release,
	.unlocked_ioctl = utcp_ep_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = utcp_ep_mmap,
	.poll = utcp_ep_poll,
	.llseek = noop_llseek,
};

/* ---- creation ---- */

static int utcp_layout(struct utcp_endpoint_create *c, struct utcp_ring_layout *l)
{
	u64 slots_bytes, size;

	if (!is_power_of_2(c->rx_entries) || c->rx_entries > UTCP_MAX_RING_ENTRIES ||
	    !is_power_of_2(c->tx_entries) || c->tx_entries > UTCP_MAX_RING_ENTRIES)
		return -EINVAL;
	if (c->slot_size < UTCP_MIN_SLOT_SIZE || c->slot_size > UTCP_MAX_SLOT_SIZE ||
	    c->slot_size % UTCP_SLOT_ALIGN)
		return -EINVAL;
	slots_bytes = (u64)(c->rx_entries + c->tx_entries) * c->slot_size;
	if (slots_bytes > UTCP_MAX_AREA_BYTES)
		return -E2BIG;

	memset(l, 0, sizeof(*l));
	l->rx_entries = c->rx_entries;
	l->tx_entries = c->tx_entries;
	l->slot_size = c->slot_size;
	l->slot_count = c->rx_entries + c->tx_entries;
	l->header_off = 0;
	l->rx_desc_off = PAGE_SIZE;
	l->tx_desc_off = l->rx_desc_off + ALIGN(c->rx_entries * sizeof(struct utcp_desc), 64);
	l->slots_off = PAGE_ALIGN(l->tx_desc_off + c->tx_entries * sizeof(struct utcp_desc));
	size = PAGE_ALIGN(l->slots_off + slots_bytes);
	l->map_size = size;
	return 0;
}

int utcp_endpoint_create(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_endpoint_create c;
	struct utcp_endpoint *ep;
	struct file *file;
	int err, fd, id;

	if (copy_from_user(&c, arg, sizeof(c)))
		return -EFAULT;
	if (c.flags || c.id || c.fd || c.reserved[0] || c.reserved[1] ||
	    memchr_inv(&c.layout, 0, sizeof(c.layout)))
		return -EINVAL;
	err = utcp_template_check(&c.tmpl);
	if (err)
		return err;

	ep = kzalloc(sizeof(*ep), GFP_KERNEL);
	if (!ep)
		return -ENOMEM;
	err = utcp_layout(&c, &ep->layout);
	if (err)
		goto err_free;
	/*
	 * Zeroed kernel memory for the header and descriptor rings, mapped by the fault
	 * handler; the slot area gets only its page array now (see struct utcp_endpoint).
	 */
	ep->nr_slot_pages = (ep->layout.map_size - ep->layout.slots_off) >> PAGE_SHIFT;
	ep->slot_pages = kvcalloc(ep->nr_slot_pages, sizeof(*ep->slot_pages), GFP_KERNEL);
	ep->area = vmalloc_user(ep->layout.slots_off);
	if (!ep->slot_pages || !ep->area) {
		err = -ENOMEM;
		goto err_vfree;
	}
	atomic64_add(ep->layout.slots_off, &utcp_global.live_ring_bytes);
	/*
	 * The first page of RX slot 0 and of the first TX slot: every connection's first
	 * frame each way lands there (utcp_deliver restarts at slot 0 on a drained ring),
	 * so back them now, while the endpoint is made (utcpd makes them ahead, off any
	 * connection's path), and mmap installs them with the header pages.
	 */
	if (!utcp_slot_page(ep, 0, GFP_KERNEL) ||
	    !utcp_slot_page(ep, (c.rx_entries * ep->layout.slot_size) >> PAGE_SHIFT, GFP_KERNEL)) {
		err = -ENOMEM;
		goto err_rings;
	}
	kref_init(&ep->ref);		/* the idr's */
	spin_lock_init(&ep->rx_lock);
	mutex_init(&ep->tx_lock);
	init_waitqueue_head(&ep->wq);
	ep->hdr = ep->area;
	ep->rx_desc = ep->area + ep->layout.rx_desc_off;
	ep->tx_desc = ep->area + ep->layout.tx_desc_off;
	ep->tmpl = c.tmpl;
	ep->ctl = ctl;

	fd = get_unused_fd_flags(O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = fd;
		goto err_rings;
	}
	file = anon_inode_getfile("[utcp-endpoint]", &utcp_ep_fops, ep, O_RDWR);
	if (IS_ERR(file)) {
		err = PTR_ERR(file);
		goto err_fd;
	}
	kref_get(&ep->ref);		/* the file's */
	kref_get(&ctl->ref);		/* ep->ctl */
	ep->file = file;
	atomic64_inc(&utcp_global.live_endpoints);
	atomic64_inc(&utcp_global.endpoints_created);

	mutex_lock(&ctl->lock);
	id = ctl->closing ? -ESHUTDOWN :
	     idr_alloc(&ctl->endpoints, ep, 1, UTCP_MAX_ENDPOINTS + 1, GFP_KERNEL);
	if (id >= 0)
		ep->id = id;
	mutex_unlock(&ctl->lock);
	if (id < 0) {
		err = id == -ENOSPC ? -EMFILE : id;
		goto err_file;
	}

	c.id = ep->id;
	c.fd = fd;
	c.layout = ep->layout;
	if (copy_to_user(arg, &c, sizeof(c))) {
		err = -EFAULT;
		mutex_lock(&ctl->lock);
		idr_remove(&ctl->endpoints, ep->id);
		mutex_unlock(&ctl->lock);
		goto err_file;
	}
	/* Only now the fd exists for user space: nothing after this can fail. */
	fd_install(fd, file);
	return 0;

err_file:
	/* The file's release drops its ref; the idr's ref goes here. */
	put_unused_fd(fd);
	utcp_endpoint_put(ep);
	fput(file);
	return err;
err_fd:
	put_unused_fd(fd);
err_rings:
	utcp_endpoint_free_rings(ep);	/* nobody could reach its pages yet */
	goto err_free;
err_vfree:
	kvfree(ep->slot_pages);
	vfree(ep->area);
err_free:
	kfree(ep);
	return err;
}

/* ---- a restarted registry: list endpoints, open them again ---- */

/* A reference on @file unless its count already reached zero (its release is under way). */
static bool utcp_file_get_live(struct file *file)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	return file_ref_get(&file->f_ref);
#else
	return atomic_long_inc_not_zero(&file->f_count);
#endif
}

int utcp_endpoint_open(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_endpoint_open o;
	struct utcp_endpoint *ep;
	struct file *file = NULL;
	long refs = 0;
	int fd;

	if (copy_from_user(&o, arg, sizeof(o)))
		return -EFAULT;
	if (o.flags || o.fd || o.file_refs || o.reserved)
		return -EINVAL;
	fd = get_unused_fd_flags(O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fd;
	mutex_lock(&ctl->lock);
	ep = o.id && o.id <= UTCP_MAX_ENDPOINTS ? idr_find(&ctl->endpoints, o.id) : NULL;
	/* In the idr, so its file is not yet freed: see struct utcp_endpoint.file. */
	if (ep && utcp_file_get_live(ep->file)) {
		file = ep->file;
		refs = file_count(file) - 1;
	}
	mutex_unlock(&ctl->lock);
	if (!file) {
		put_unused_fd(fd);
		return -ENOENT;
	}
	o.fd = fd;
	o.file_refs = (u32)clamp_t(long, refs, 0, U32_MAX);
	if (copy_to_user(arg, &o, sizeof(o))) {
		put_unused_fd(fd);
		fput(file);
		return -EFAULT;
	}
	fd_install(fd, file);
	return 0;
}

int utcp_endpoint_list(struct utcp_ctl *ctl, void __user *arg)
{
	struct utcp_endpoint_entry *ents = NULL;
	struct utcp_endpoint_list l;
	struct utcp_endpoint *ep;
	u32 n = 0, cap;
	int id, err = 0;

	if (copy_from_user(&l, arg, sizeof(l)))
		return -EFAULT;
	if (l.count || l.flags || l.reserved0 || l.reserved)
		return -EINVAL;
	/* More than the table can hold is never needed; a bigger array is simply not filled. */
	cap = min_t(u32, l.capacity, UTCP_MAX_ENDPOINTS);
	if (cap) {
		ents = kvcalloc(cap, sizeof(*ents), GFP_KERNEL);
		if (!ents)
			return -ENOMEM;
	}
	mutex_lock(&ctl->lock);
	idr_for_each_entry(&ctl->endpoints, ep, id) {
		if (n < cap) {
			struct utcp_endpoint_entry *e = &ents[n];

			e->id = ep->id;
			e->flags = READ_ONCE(ep->detached) ? UTCP_EPF_DETACHED : 0;
			mutex_lock(&ep->tx_lock);	/* template and TX record change under it */
			e->tmpl = ep->tmpl;
			e->tcp_flags = ep->st.tcp_flags | READ_ONCE(ep->rx_tcp_flags);
			mutex_unlock(&ep->tx_lock);
		}
		n++;
	}
	mutex_unlock(&ctl->lock);
	l.count = n;
	if (n > cap)
		err = -ENOSPC;
	else if (n && copy_to_user(u64_to_user_ptr(l.entries), ents, n * sizeof(*ents)))
		err = -EFAULT;
	kvfree(ents);
	if (err != -EFAULT && copy_to_user(arg, &l, sizeof(l)))
		err = -EFAULT;
	return err;
}
