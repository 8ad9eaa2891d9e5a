// SPDX-License-Identifier: GPL-2.0
/*
 * utcp_rx.c - receive: the rx_handler that runs the classifier on every frame of the
 * attached device and copies matched frames into their endpoint's RX ring.
 */
#include <linux/filter.h>
#include <linux/highmem.h>
#include <linux/ip.h>
#include <linux/ktime.h>
#include <linux/netdevice.h>
#include <linux/poll.h>
#include <linux/skbuff.h>
#include <linux/tcp.h>
#include <net/checksum.h>
#include "utcp_internal.h"

/* One run in this many is timed: two clock reads cost more than the program itself. */
#define UTCP_CLASSIFIER_SAMPLE 64

static u32 utcp_classify(struct utcp_ctl *ctl, struct bpf_prog *prog, struct sk_buff *skb)
{
	u32 n = atomic_inc_return(&ctl->classifier_runs);
	u64 t0;
	u32 id;

	atomic64_inc(&utcp_global.classifier_runs);
	if (n % UTCP_CLASSIFIER_SAMPLE)
		return bpf_prog_run_save_cb(prog, skb);
	t0 = ktime_get_ns();
	id = bpf_prog_run_save_cb(prog, skb);
	atomic64_add(ktime_get_ns() - t0, &utcp_global.classifier_sampled_ns);
	atomic64_inc(&utcp_global.classifier_sampled_runs);
	return id;
}

/*
 * What the peer told a TCP endpoint that the registry needs if the application dies
 * (uapi UTCP_EPT_*): whether its FIN arrived (and where it ended), and whether it
 * acknowledged our FIN. Caller holds rx_lock.
 */
static void utcp_rx_track(struct utcp_endpoint *ep, const struct sk_buff *skb)
{
	struct iphdr ipb;
	struct tcphdr thb;
	const struct iphdr *iph;
	const struct tcphdr *th;
	u32 ihl, tot, doff, tx, flags = ep->rx_tcp_flags;

	/* skb->data is at the MAC header; the ring's copy is user-writable, so not that. */
	if (skb->protocol != htons(ETH_P_IP))
		return;
	iph = skb_header_pointer(skb, ETH_HLEN, sizeof(ipb), &ipb);
	if (!iph || iph->protocol != IPPROTO_TCP)
		return;
	ihl = iph->ihl * 4;
	tot = ntohs(iph->tot_len);
	if (ihl < sizeof(*iph) || tot < ihl + sizeof(*th) || ETH_HLEN + tot > skb->len)
		return;
	th = skb_header_pointer(skb, ETH_HLEN + ihl, sizeof(thb), &thb);
	if (!th)
		return;
	doff = th->doff * 4;
	if (doff < sizeof(*th) || ihl + doff > tot || th->rst)
		return;
	if (th->fin && !(flags & UTCP_EPT_PEER_FIN)) {
		WRITE_ONCE(ep->rx_fin_end, ntohl(th->seq) + (tot - ihl - doff) + 1);
		smp_wmb();	/* pairs with utcp_tx_track's smp_rmb */
		flags |= UTCP_EPT_PEER_FIN;
	}
	tx = READ_ONCE(ep->st.tcp_flags);
	if (th->ack && (tx & UTCP_EPT_FIN) && ntohl(th->ack_seq) == READ_ONCE(ep->st.tcp_snd_max))
		flags |= UTCP_EPT_FIN_ACKED;
	if (flags != ep->rx_tcp_flags)
		WRITE_ONCE(ep->rx_tcp_flags, flags);
}

/*
 * A bare TCP ACK: IPv4 TCP with no payload and none of SYN, FIN, RST, URG. Anything
 * else (including what does not parse) may be what a UTCP_TXW_DATA sleeper waits for.
 */
static bool utcp_rx_bare_ack(const struct sk_buff *skb)
{
	struct iphdr ipb;
	struct tcphdr thb;
	const struct iphdr *iph;
	const struct tcphdr *th;
	u32 ihl, tot;

	if (skb->protocol != htons(ETH_P_IP))
		return false;
	iph = skb_header_pointer(skb, ETH_HLEN, sizeof(ipb), &ipb);
	if (!iph || iph->protocol != IPPROTO_TCP)
		return false;
	ihl = iph->ihl * 4;
	tot = ntohs(iph->tot_len);
	if (ihl < sizeof(*iph) || tot < ihl + sizeof(*th) || ETH_HLEN + tot > skb->len)
		return false;
	th = skb_header_pointer(skb, ETH_HLEN + ihl, sizeof(thb), &thb);
	if (!th || th->doff * 4 < sizeof(*th))
		return false;
	return ihl + th->doff * 4 == tot && !th->syn && !th->fin && !th->rst && !th->urg;
}

/*
 * Makes sure every slot page under [off, off + len) of the mapping exists (a frame is
 * not half-written for want of memory). False when one could not be allocated.
 */
static bool utcp_slot_pages_get(struct utcp_endpoint *ep, u32 off, u32 len)
{
	u32 first = (off - ep->layout.slots_off) >> PAGE_SHIFT;
	u32 last = (off - ep->layout.slots_off + len - 1) >> PAGE_SHIFT;

	for (; first <= last; first++)
		if (!utcp_slot_page(ep, first, GFP_ATOMIC))
			return false;
	return true;
}

/*
 * Copies the frame into the slot at @off a page at a time. With @csum_start >= 0 the
 * bytes from there on are summed while they are copied (one pass over the data) and the
 * sum is returned through @csum; each page's partial sum is added at its byte offset
 * from csum_start (csum_block_add swaps the bytes of a piece that starts at an odd one).
 * Returns 0 or the error of skb_copy_bits (a frame shorter than it claims).
 */
static int utcp_copy_to_slot(struct utcp_endpoint *ep, struct sk_buff *skb, u32 off,
			     int csum_start, __wsum *csum)
{
	u32 rel = off - ep->layout.slots_off, pos = 0, len = skb->len;
	__wsum sum = 0;
	int err = 0;

	while (pos < len && !err) {
		u32 in = offset_in_page(rel + pos), n = min_t(u32, len - pos, PAGE_SIZE - in);
		/* utcp_slot_pages_get allocated every page of the slot already. */
		struct page *page = utcp_slot_page(ep, (rel + pos) >> PAGE_SHIFT, 0);
		u8 *dst = (u8 *)kmap_local_page(page) + in;

		if (csum_start < 0 || pos + n <= (u32)csum_start) {
			err = skb_copy_bits(skb, pos, dst, n);
		} else {
			u32 a = max_t(u32, pos, csum_start);

			if (a > pos)
				err = skb_copy_bits(skb, pos, dst, a - pos);
			if (!err)
				sum = csum_block_add(sum, skb_copy_and_csum_bits(skb, a, dst + (a - pos),
										 pos + n - a),
						     a - csum_start);
		}
		kunmap_local(dst);
		pos += n;
	}
	*csum = sum;
	return err;
}

/* Writes a finished L4 checksum at @at bytes into the slot at @off (maybe across pages). */
static void utcp_slot_put_csum(struct utcp_endpoint *ep, u32 off, u32 at, __sum16 check)
{
	const u8 *src = (const u8 *)&check;
	u32 rel = off - ep->layout.slots_off + at, i;

	for (i = 0; i < sizeof(check); i++, rel++) {
		u8 *dst = kmap_local_page(utcp_slot_page(ep, rel >> PAGE_SHIFT, 0));

		dst[offset_in_page(rel)] = src[i];
		kunmap_local(dst);
	}
}

/*
 * Copies the frame (skb->data at the MAC header) into the next RX slot. Returns false
 * when it was dropped (ring full, no memory for the slot's pages, or frame bigger than
 * a slot). Runs in softirq.
 */
static bool utcp_deliver(struct utcp_endpoint *ep, struct sk_buff *skb)
{
	const struct utcp_ring_layout *l = &ep->layout;
	u32 len = skb->len, prod, cons, slot, off, flags = 0;
	struct utcp_desc *desc;
	int csum_start = -1;
	u32 csum_at = 0;
	__wsum csum;
	u32 signal_end;
	bool wake, signal;

	spin_lock(&ep->rx_lock);
	prod = ep->rx_prod;
	/* rx_cons is user-written: read once; a value no consumer could have means "full". */
	cons = READ_ONCE(ep->hdr->rx_cons.value);
	if (prod - cons >= l->rx_entries) {
		ep->st.rx_drops_full++;
		goto drop;
	}
	if (len > l->slot_size) {
		ep->st.rx_drops_too_big++;
		goto drop;
	}
	/*
	 * A drained ring (the consumer is done with every slot) starts again at slot 0:
	 * request/response traffic and short connections then reuse the same few pages,
	 * warm in cache and already backed, instead of walking every slot of the ring.
	 * Slots are still used in ring order between drains, and the descriptor says
	 * where the frame is (uapi: rx[i].offset), so consumers need nothing new.
	 */
	if (prod == cons)
		ep->rx_base = prod;
	slot = (prod - ep->rx_base) & (l->rx_entries - 1);
	off = l->slots_off + slot * l->slot_size;
	if (len && !utcp_slot_pages_get(ep, off, len)) {
		/* Counted as "no room in the ring" for the endpoint, by cause globally. */
		ep->st.rx_drops_full++;
		atomic64_inc(&utcp_global.rx_drops_nomem);
		goto drop;
	}
	if (skb->ip_summed == CHECKSUM_PARTIAL) {
		/*
		 * A locally sent frame (e.g. over veth) still has only the pseudo-header sum
		 * in its L4 checksum field: finish it in our copy so user space sees a valid
		 * frame, including a TSO frame coalesced beyond the MTU. The L4 part is summed
		 * while it is copied (one pass over the data, not two).
		 */
		int start = skb_checksum_start_offset(skb);

		csum_at = start + skb->csum_offset;
		if (start >= 0 && start < len && csum_at + sizeof(__sum16) <= len)
			csum_start = start;
	}
	if (utcp_copy_to_slot(ep, skb, off, csum_start, &csum))
		goto copy_failed;
	if (csum_start >= 0) {
		utcp_slot_put_csum(ep, off, csum_at, csum_fold(csum));
		flags |= UTCP_RXF_CSUM_OK;
	} else if (skb->ip_summed == CHECKSUM_UNNECESSARY) {
		flags |= UTCP_RXF_CSUM_OK;
	}
	if (skb_is_gso(skb) || len > skb->dev->mtu + ETH_HLEN)
		flags |= UTCP_RXF_GRO;
	utcp_rx_track(ep, skb);
	signal = !utcp_rx_bare_ack(skb);
	signal_end = ep->rx_signal_end;
	if (signal)
		WRITE_ONCE(ep->rx_signal_end, prod + 1);
	desc = &ep->rx_desc[prod & (l->rx_entries - 1)];
	WRITE_ONCE(desc->offset, off);
	WRITE_ONCE(desc->len, len);
	WRITE_ONCE(desc->flags, flags);
	WRITE_ONCE(desc->reserved, 0);
	ep->rx_prod = prod + 1;
	/* Release: the slot and descriptor are visible before the new rx_prod. */
	smp_store_release(&ep->hdr->rx_prod.value, prod + 1);
	/*
	 * Full barrier between publishing rx_prod and re-reading rx_cons; pairs with the
	 * one in utcp_ep_poll. Wake only if the consumer had drained the ring before this
	 * frame: later frames of the same batch find it non-empty and wake nobody -- except
	 * the first frame that is not a bare ACK behind ACKs nobody consumed yet, which a
	 * UTCP_IOC_TX_WAIT with UTCP_TXW_DATA sleeps for (the ring was not drained then).
	 */
	smp_mb();
	cons = READ_ONCE(ep->hdr->rx_cons.value);
	wake = cons == prod || (signal && !utcp_rx_signal_pending(signal_end, cons, prod));
	ep->st.rx_frames++;
	ep->st.rx_bytes += len;
	spin_unlock(&ep->rx_lock);
	atomic64_inc(&utcp_global.rx_frames);
	atomic64_add(len, &utcp_global.rx_bytes);
	if (wake && wq_has_sleeper(&ep->wq))
		wake_up_interruptible_poll(&ep->wq, EPOLLIN | EPOLLRDNORM);
	return true;
copy_failed:
	ep->st.rx_drops_too_big++;
drop:
	spin_unlock(&ep->rx_lock);
	atomic64_inc(&utcp_global.rx_drops);
	return false;
}

rx_handler_result_t utcp_rx_handler(struct sk_buff **pskb)
{
	struct sk_buff *skb = *pskb;
	struct utcp_ctl *ctl = rcu_dereference(skb->dev->rx_handler_data);
	struct utcp_endpoint *ep;
	struct bpf_prog *prog;
	int mac_len;
	u32 id;

	/*
	 * Looped-back transmissions are not input, and a frame for another host's MAC
	 * (promiscuous mode) is not ours even if its addresses match a flow: the kernel's
	 * stack drops those too (ip_rcv).
	 */
	if (unlikely(skb->pkt_type == PACKET_LOOPBACK || skb->pkt_type == PACKET_OTHERHOST))
		return RX_HANDLER_PASS;
	prog = rcu_dereference(ctl->prog);
	if (!prog)
		return RX_HANDLER_PASS;
	/* The classifier sees the frame from the Ethernet header, like a packet socket. */
	mac_len = skb->data - skb_mac_header(skb);
	__skb_push(skb, mac_len);
	id = utcp_classify(ctl, prog, skb);
	if (!id) {
		__skb_pull(skb, mac_len);
		atomic64_inc(&utcp_global.rx_passed);
		return RX_HANDLER_PASS;
	}
	ep = id <= UTCP_MAX_ENDPOINTS ? idr_find(&ctl->endpoints, id) : NULL;
	if (!ep || READ_ONCE(ep->detached)) {
		/* A stale map entry: the kernel's stack answers it as it would any frame. */
		__skb_pull(skb, mac_len);
		atomic64_inc(&utcp_global.rx_stale);
		return RX_HANDLER_PASS;
	}
	if (utcp_deliver(ep, skb))
		consume_skb(skb);
	else
		kfree_skb(skb);
	return RX_HANDLER_CONSUMED;
}
