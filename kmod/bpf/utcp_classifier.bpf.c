// SPDX-License-Identifier: GPL-2.0
/*
 * utcp_classifier.bpf.c - the demultiplexer the module runs on every received frame
 * (paper §3.2: "software demux synthesized into the kernel"): Ethernet/IPv4/TCP|UDP
 * 4-tuple -> endpoint id, 0 for "not ours, give it to the kernel's stack".
 *
 * A BPF_PROG_TYPE_SOCKET_FILTER program: the module runs it with skb->data at the
 * Ethernet header. Every header byte is read with bpf_skb_load_bytes, which checks the
 * offset against the frame length, so nothing reads past the frame.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/utcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct utcp_flow_key);
	__type(value, __u32);
} utcp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct utcp_listen_key);
	__type(value, __u32);
} utcp_listeners SEC(".maps");

SEC("socket")
int utcp_classify(struct __sk_buff *skb)
{
	struct utcp_flow_key fk = {};
	struct utcp_listen_key lk = {};
	struct iphdr iph;
	__be16 ports[2];
	__be16 proto;
	__u32 ihl, *id;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)))
		return 0;
	if (proto != bpf_htons(ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &iph, sizeof(iph)))
		return 0;
	/* RFC 791 §3.1: version 4, IHL >= 5 words. */
	if (iph.version != 4 || iph.ihl < 5)
		return 0;
	if (iph.protocol != IPPROTO_TCP && iph.protocol != IPPROTO_UDP)
		return 0;
	/* Fragments carry no (or partial) ports: the kernel reassembles them. */
	if (iph.frag_off & bpf_htons(0x3fff))
		return 0;
	ihl = iph.ihl * 4;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ihl, ports, sizeof(ports)))
		return 0;

	/* Received frame: its destination is our local side. */
	fk.local_ip = iph.daddr;
	fk.remote_ip = iph.saddr;
	fk.local_port = ports[1];
	fk.remote_port = ports[0];
	fk.proto = iph.protocol;
	id = bpf_map_lookup_elem(&utcp_flows, &fk);
	if (id)
		return *id;

	lk.local_ip = iph.daddr;
	lk.local_port = ports[1];
	lk.proto = iph.protocol;
	id = bpf_map_lookup_elem(&utcp_listeners, &lk);
	if (id)
		return *id;
	lk.local_ip = 0;	/* a listener on any local address */
	id = bpf_map_lookup_elem(&utcp_listeners, &lk);
	return id ? *id : 0;
}

char LICENSE[] SEC("license") = "GPL";
