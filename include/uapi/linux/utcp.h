/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * utcp.h - the one contract between the utcp kernel module and user space.
 *
 * Everything here has fixed-width types and explicit padding so the layout is the
 * same for every compiler and for C and C++; the module pins it with BUILD_BUG_ON and
 * user space with static_assert. Reserved fields must be zero and are checked.
 *
 * Two kinds of file:
 *  - a *control* file: open("/dev/utcp"). It turns into a control file on its first
 *    control ioctl, which needs CAP_NET_ADMIN (in the caller's network namespace);
 *    every control ioctl checks it again. It attaches to one network device, holds the
 *    classifier and creates endpoints. Closing it detaches the device and detaches all
 *    its endpoints (their files stay valid but carry no traffic any more) -- unless it
 *    was made persistent (UTCP_IOC_SET_PERSIST): then its attachment, classifier and
 *    endpoints stay and are *parked*, and a new control file takes them over with
 *    UTCP_IOC_ADOPT (a restarted registry; see "Restarting the registry" below).
 *  - an *endpoint* file: returned by UTCP_IOC_ENDPOINT_CREATE as a new fd. It is the
 *    capability to send and receive within its header template: mmap its rings, poll
 *    it, UTCP_IOC_TX (and UTCP_IOC_TX_WAIT), UTCP_IOC_EP_STATS. Nothing on an endpoint
 *    file can change its template. It can be passed to another process with SCM_RIGHTS.
 * Ioctls of one kind on a file of the other kind fail with ENOTTY; UTCP_IOC_ABI_INFO
 * works on both.
 */
#ifndef _UAPI_LINUX_UTCP_H
#define _UAPI_LINUX_UTCP_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* Bumped on every incompatible change; the library refuses a module of another version. */
#define UTCP_ABI_VERSION 3

#define UTCP_DEVICE_NAME "utcp"
#define UTCP_DEVICE_PATH "/dev/utcp"

#define UTCP_IOC_MAGIC 0xb7

/* Limits (also reported by UTCP_IOC_ABI_INFO). */
#define UTCP_MAX_ENDPOINTS	4096		/* per control file */
#define UTCP_MAX_RING_ENTRIES	4096		/* per RX or TX ring, power of two */
#define UTCP_MAX_FRAME_LEN	(14 + 65535)	/* Ethernet header + largest IPv4 datagram */
#define UTCP_MAX_SLOT_SIZE	(65536 + 256)	/* one 64 KiB GSO/GRO frame + headroom */
#define UTCP_MIN_SLOT_SIZE	128
#define UTCP_SLOT_ALIGN		64		/* slot sizes are multiples of a cache line */
#define UTCP_MAX_AREA_BYTES	(64u << 20)	/* packet buffer area of one endpoint */

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

/*
 * utcp_abi_info.flags (additions within one ABI version; a library must work without
 * them):
 * UTCP_ABI_F_TX_TCP_CSUM: the module completes the TCP checksum of every TCP frame it
 *   transmits (CHECKSUM_PARTIAL: the NIC, or the kernel just before a device that cannot),
 *   so user space may leave only the folded pseudo-header sum in it (RFC 9293 §3.1) --
 *   as it always may in a frame longer than the MTU, which leaves as GSO.
 */
#define UTCP_ABI_F_TX_TCP_CSUM	(1u << 0)
/*
 * UTCP_ABI_F_TX_SPLIT: a TX descriptor may carry UTCP_TXF_SPLIT: the frame is its
 *   headers at `offset` followed by payload at another place of the slot area (see
 *   struct utcp_desc), so a library can keep its send buffer in the slot area and send
 *   from it without first copying the payload behind the headers.
 */
#define UTCP_ABI_F_TX_SPLIT	(1u << 1)
/*
 * UTCP_ABI_F_TX_WAIT: endpoint files answer UTCP_IOC_TX_WAIT (send, then sleep until a
 *   frame is in the RX ring): one call where a request/response client made two, the
 *   transmit ioctl and poll(2).
 */
#define UTCP_ABI_F_TX_WAIT	(1u << 2)

/*
 * The shared region of one endpoint: one mmap of layout.map_size bytes at offset 0 of
 * the endpoint fd. All offsets below are from the start of that mapping.
 *
 *   0         +-------------------------------------------+
 *             | struct utcp_ring_header (one page)        |
 *             |   rx_prod  [K]  kernel writes, user reads |  each index on its
 *             |   rx_cons  [U]  user writes, kernel reads |  own cache line
 *             |   tx_prod  [U]  user writes, kernel reads |
 *             |   tx_cons  [K]  kernel writes, user reads |
 *   rx_desc   +-------------------------------------------+
 *             | struct utcp_desc rx[rx_entries]      [K]  |
 *   tx_desc   +-------------------------------------------+
 *             | struct utcp_desc tx[tx_entries]  [U], [K] |  status written back
 *   slots     +-------------------------------------------+
 *             | slot 0 .. rx_entries-1: RX buffers   [K]  |  RX desc says which
 *             | slot rx_entries ..: TX buffers       [U]  |  suggested TX slot j
 *   map_size  +-------------------------------------------+
 *
 * Indices are free-running __u32 counters; entry = index & (entries - 1). A ring is
 * empty when prod == cons and full when prod - cons == entries.
 *
 * RX: the kernel fills rx[rx_prod & mask] (offset, len, flags) and the slot, then
 * publishes rx_prod with release semantics. Slots are used in ring order, and a frame
 * that finds the ring drained (rx_cons == rx_prod) goes to slot 0 again: read the
 * frame at its descriptor's offset, never at a slot derived from the index. User space reads rx_prod with acquire,
 * uses entries up to it, and publishes rx_cons with release once it is done with the
 * slots (a slot is reused as soon as rx_cons passes it).
 * Wake-up rule: the kernel wakes pollers only for a frame that makes the ring
 * non-empty as seen by the consumer (rx_cons == the frame's index after the frame is
 * published), i.e. at most once per batch the consumer has not yet started on. So a
 * consumer must drain (rx_cons == rx_prod) before it sleeps in poll(); poll() itself
 * re-checks the indices after registering, so no wake-up is lost.
 *
 * TX: user space writes frames anywhere in the slot area, fills tx[tx_prod & mask]
 * (offset, len, flags = 0, reserved = 0; or a split frame, UTCP_TXF_SPLIT below),
 * publishes tx_prod with release, then calls UTCP_IOC_TX. The kernel reads each descriptor once, copies the frame, checks the
 * copy against the template, sends or refuses it, writes the status into the
 * descriptor's flags (UTCP_TXF_*) and publishes tx_cons with release. Entries before
 * tx_cons are the user's again. Frames held back by the rate limit stay before
 * tx_prod and after tx_cons: the next UTCP_IOC_TX retries them.
 *
 * The kernel reads every user-written index and descriptor field exactly once, keeps
 * its own shadow copies of the indices, and range-checks everything it reads.
 */
struct utcp_ring_index {
	__u32 value;
	__u32 pad0;
	__u64 pad[7];		/* keeps producer and consumer on separate cache lines */
};

struct utcp_ring_header {
	struct utcp_ring_index rx_prod;	/* [K] */
	struct utcp_ring_index rx_cons;	/* [U] */
	struct utcp_ring_index tx_prod;	/* [U] */
	struct utcp_ring_index tx_cons;	/* [K] */
};

struct utcp_desc {
	__u32 offset;		/* from the start of the mapping */
	__u32 len;		/* frame length, Ethernet header included */
	__u32 flags;		/* RX: UTCP_RXF_*; TX: in 0 or UTCP_TXF_SPLIT, out UTCP_TXF_* */
	__u32 reserved;		/* zero; TX with UTCP_TXF_SPLIT: the payload's offset */
};

/* RX descriptor flags. */
#define UTCP_RXF_CSUM_OK	(1u << 0)	/* the device or local sender vouches for the L4 checksum */
#define UTCP_RXF_GRO		(1u << 1)	/* frame is longer than the MTU (coalesced by GRO/TSO) */

/* TX descriptor status, written by the kernel into flags. */
#define UTCP_TXF_SENT		(1u << 0)	/* handed to the device */
#define UTCP_TXF_ERR_TEMPLATE	(1u << 1)	/* refused: a header field differs from the template */
#define UTCP_TXF_ERR_MALFORMED	(1u << 2)	/* refused: bad offset/len/flags or headers */

/*
 * TX descriptor input flag (UTCP_ABI_F_TX_SPLIT): the frame is in two pieces, both in
 * the slot area. The first UTCP_TXF_HDR_LEN(flags) bytes (Ethernet + IPv4 + TCP/UDP
 * headers, 14..UTCP_TXF_HDR_MAX) are at `offset`; the remaining len - hdr_len payload
 * bytes at `reserved`. The module copies both pieces before it checks or sends
 * anything, exactly as for a contiguous frame; no other input bit may be set.
 */
#define UTCP_TXF_SPLIT		(1u << 8)
#define UTCP_TXF_HDR_SHIFT	16
#define UTCP_TXF_HDR_LEN(flags)	(((flags) >> UTCP_TXF_HDR_SHIFT) & 0xffffu)
#define UTCP_TXF_HDR_MAX	(14 + 60 + 60)	/* Ethernet, IPv4 and TCP headers with all options */

/* Layout of an endpoint's mapping, returned by UTCP_IOC_ENDPOINT_CREATE. */
struct utcp_ring_layout {
	__u64 map_size;		/* mmap exactly this many bytes at offset 0 */
	__u32 rx_entries;
	__u32 tx_entries;
	__u32 slot_size;
	__u32 slot_count;	/* rx_entries + tx_entries */
	__u32 header_off;	/* struct utcp_ring_header */
	__u32 rx_desc_off;
	__u32 tx_desc_off;
	__u32 slots_off;	/* slot i is at slots_off + i * slot_size */
	__u64 reserved[2];
};

/*
 * Header template of an endpoint (paper §3.3): every transmitted frame must be
 * Ethernet + IPv4 (no fragments) + TCP or UDP with these addresses and ports.
 * Addresses and ports are in network byte order.
 */
struct utcp_template {
	__u8 src_mac[6];
	__u8 proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;		/* UTCP_TMPL_F_* */
	__be32 local_ip;
	__be32 remote_ip;	/* zero for a listener */
	__be16 local_port;
	__be16 remote_port;	/* zero for a listener */
	__u16 mss;		/* TCP payload per segment when a frame exceeds the MTU; 0 = MTU - headers */
	__u16 reserved0;
	__u64 reserved1;
};

/* A listener template accepts any remote address and port. */
#define UTCP_TMPL_F_LISTENER	(1u << 0)

/* ---- control ioctls (control file only, CAP_NET_ADMIN) ---- */

/* Attach to the device with this ifindex in the caller's network namespace. */
struct utcp_attach {
	__s32 ifindex;
	__u32 flags;		/* zero */
	__u64 reserved;		/* zero */
};

/* Install (prog_fd >= 0) or remove (prog_fd == -1) the classifier program. */
struct utcp_classifier {
	__s32 prog_fd;		/* BPF_PROG_TYPE_SOCKET_FILTER; returns 0 or an endpoint id */
	__u32 flags;		/* zero */
	__u64 reserved;		/* zero */
};

struct utcp_endpoint_create {
	__u32 rx_entries;	/* in: power of two, 1 .. UTCP_MAX_RING_ENTRIES */
	__u32 tx_entries;	/* in: power of two, 1 .. UTCP_MAX_RING_ENTRIES */
	__u32 slot_size;	/* in: multiple of UTCP_SLOT_ALIGN, MIN .. MAX_SLOT_SIZE */
	__u32 flags;		/* in: zero */
	struct utcp_template tmpl;	/* in */
	__u32 id;		/* out: endpoint id (what the classifier returns) */
	__s32 fd;		/* out: the endpoint file, O_CLOEXEC */
	struct utcp_ring_layout layout;	/* out */
	__u64 reserved[2];	/* in: zero */
};

/*
 * UTCP_IOC_SET_TEMPLATE (control file): endpoint `id` checks its frames against `tmpl`
 * from now on. A new template is a new connection: the endpoint's TCP tracking
 * (utcp_endpoint_stats.tcp_flags and the sequence numbers with it) starts afresh.
 */
struct utcp_endpoint_template {
	__u32 id;
	__u32 flags;		/* zero */
	struct utcp_template tmpl;
};

/*
 * Token bucket on transmitted bytes (Ethernet header included): bytes_per_sec == 0
 * means unlimited. A frame that does not fit in the bucket stays queued; UTCP_IOC_TX
 * returns what it sent, or -EAGAIN when the first pending frame is over budget.
 */
struct utcp_rate_limit {
	__u32 id;
	__u32 flags;		/* zero */
	__u64 bytes_per_sec;	/* <= UTCP_MAX_RATE */
	__u64 burst_bytes;	/* <= UTCP_MAX_RATE; must be >= one frame to send anything */
	__u64 reserved;		/* zero */
};
#define UTCP_MAX_RATE (1ull << 40)

struct utcp_endpoint_id {
	__u32 id;
	__u32 flags;		/* zero */
};

/* Per-endpoint statistics (from the endpoint file, or by id from the control file). */
struct utcp_endpoint_stats {
	__u32 id;		/* control file: in; endpoint file: out */
	__u32 flags;		/* out: UTCP_EPF_* */
	__u64 rx_frames;
	__u64 rx_bytes;
	__u64 rx_drops_full;	/* RX ring full (or its consumer index was nonsense), or
				 * no memory for a slot page the frame needed (the
				 * module backs slot pages on first use; those drops
				 * are also in the global rx_drops_nomem) */
	__u64 rx_drops_too_big;	/* frame longer than a slot */
	__u64 tx_frames;
	__u64 tx_bytes;
	__u64 tx_template_rejects;
	__u64 tx_malformed;
	__u64 tx_rate_limited;	/* UTCP_IOC_TX calls stopped by the token bucket */
	__u64 tx_dev_errors;	/* the device queue refused the frame */
	__u64 ring_bytes;	/* size of the mapping (layout.map_size); the memory
				 * behind it is allocated as used: see live_ring_bytes */
	/*
	 * What the endpoint's TCP frames told the wire, from the headers the TX path
	 * checked (paper §3.4: the registry finishes or resets a connection whose
	 * application died, and needs the sequence space it used):
	 */
	__u32 tcp_snd_max;	/* highest sequence number sent + 1 (SYN/FIN count one) */
	__u32 tcp_rcv_ack;	/* acknowledgment number of the last frame with ACK */
	__u32 tcp_flags;	/* UTCP_EPT_* */
	__u32 file_refs;	/* EP_STATS on the endpoint file: references to that open
				 * file (fds in any process, mappings, SCM_RIGHTS in flight),
				 * the caller's included; one more while the ioctl runs when
				 * the calling process has several threads (its fd table is
				 * shared, so the kernel holds the file for the call): compare
				 * only counts read in the same way; 0 from the control file */
};
#define UTCP_EPF_DETACHED	(1u << 0)	/* destroyed or its control file is closed */
#define UTCP_EPT_SENT		(1u << 0)	/* a TCP frame left: tcp_snd_max is valid */
#define UTCP_EPT_ACK		(1u << 1)	/* tcp_rcv_ack is valid */
#define UTCP_EPT_SYN		(1u << 2)	/* a SYN left */
#define UTCP_EPT_FIN		(1u << 3)	/* a FIN left: the application closed */
#define UTCP_EPT_RST		(1u << 4)	/* a RST left: the connection was aborted */
/* From frames the RX path delivered to the endpoint (set since ABI 3, module 0.4): */
#define UTCP_EPT_PEER_FIN	(1u << 5)	/* a FIN arrived from the peer */
#define UTCP_EPT_FIN_ACKED	(1u << 6)	/* the peer acknowledged tcp_snd_max after our FIN */
/* Our first FIN acknowledged a FIN the peer had sent: a passive close (RFC 9293 LAST-ACK),
 * which ends without TIME-WAIT once the peer acknowledges it. */
#define UTCP_EPT_LAST_ACK	(1u << 7)

struct utcp_global_stats {
	__u64 live_endpoints;
	/*
	 * Ring memory allocated and not yet freed, in bytes: each endpoint's header page
	 * and descriptor rings (layout.slots_off bytes, from creation) plus every page of
	 * its slot area that was ever used -- slot pages are allocated, zeroed, on the
	 * first fault of a mapping or the first RX frame that lands there, and all are
	 * freed with the endpoint. An endpoint adds between slots_off and map_size.
	 */
	__u64 live_ring_bytes;
	__u64 live_controls;
	__u64 endpoints_created;
	__u64 rx_frames;	/* delivered to an endpoint */
	__u64 rx_bytes;
	__u64 rx_passed;	/* classifier said "not ours" */
	__u64 rx_stale;		/* classifier named an endpoint that does not exist */
	__u64 rx_drops;		/* ring full or frame too big */
	__u64 tx_frames;
	__u64 tx_bytes;
	__u64 tx_template_rejects;
	__u64 tx_malformed;
	__u64 classifier_runs;
	__u64 classifier_sampled_runs;	/* every 64th run is timed ... */
	__u64 classifier_sampled_ns;	/* ... ns/run = sampled_ns / sampled_runs */
	__u64 parked_controls;	/* attachments parked by a closed persistent control file */
	__u64 rx_drops_nomem;	/* frames dropped for want of memory for a slot page
				 * (also in rx_drops and the endpoint's rx_drops_full;
				 * 0 from modules that allocated the whole ring
				 * at creation) */
	__u64 reserved[2];
};

#define UTCP_IOC_ATTACH		_IOW(UTCP_IOC_MAGIC, 0x01, struct utcp_attach)
#define UTCP_IOC_DETACH		_IO(UTCP_IOC_MAGIC, 0x02)
#define UTCP_IOC_SET_CLASSIFIER	_IOW(UTCP_IOC_MAGIC, 0x03, struct utcp_classifier)
#define UTCP_IOC_ENDPOINT_CREATE _IOWR(UTCP_IOC_MAGIC, 0x04, struct utcp_endpoint_create)
#define UTCP_IOC_SET_TEMPLATE	_IOW(UTCP_IOC_MAGIC, 0x05, struct utcp_endpoint_template)
#define UTCP_IOC_SET_RATE	_IOW(UTCP_IOC_MAGIC, 0x06, struct utcp_rate_limit)
#define UTCP_IOC_GLOBAL_STATS	_IOR(UTCP_IOC_MAGIC, 0x07, struct utcp_global_stats)
#define UTCP_IOC_ENDPOINT_STATS	_IOWR(UTCP_IOC_MAGIC, 0x08, struct utcp_endpoint_stats)
/*
 * UTCP_IOC_ENDPOINT_DESTROY detaches an endpoint at once (no more frames, TX gives
 * -ENOTCONN, poll gives EPOLLHUP); its memory goes when its last fd and mapping do. An
 * endpoint whose last fd and mapping are gone leaves the table by itself, so its id is
 * then -ENOENT.
 */
#define UTCP_IOC_ENDPOINT_DESTROY _IOW(UTCP_IOC_MAGIC, 0x09, struct utcp_endpoint_id)

/*
 * ---- Restarting the registry (control ioctls) ----
 *
 * The data path does not need the registry: applications hold their endpoint files. So
 * a registry that dies must not take the connections with it:
 *
 * UTCP_IOC_SET_PERSIST marks the control file's attachment persistent (persist = 1) or
 * not (0, the default). When a persistent control file is closed while attached, its
 * attachment, classifier and endpoints stay as they are (frames keep arriving, endpoint
 * files keep working) and the state is parked, keyed by network namespace and ifindex.
 * A parked attachment goes away when its device does (NETDEV_UNREGISTER: its endpoints
 * are detached as on an ordinary close) or when the module is unloaded (possible only
 * once no endpoint file is open). A control file that is not attached parks nothing.
 *
 * UTCP_IOC_ADOPT, on a /dev/utcp file that is not yet a control file (-EISCONN
 * otherwise), takes over the attachment parked for ifindex in the caller's network
 * namespace (-ENOENT if there is none) and makes the file its control file: it then owns
 * it exactly as the closed one did, persistent flag included. Out: the number of
 * endpoints it has and the id of its classifier program (0: none), from which user
 * space reaches the classifier's maps (BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD
 * map_ids, BPF_MAP_GET_FD_BY_ID). Closing the adopting file without persistence
 * detaches everything, as for any control file: that is how a parked attachment is
 * dropped on purpose.
 *
 * UTCP_IOC_ENDPOINT_LIST fills a user array with the control file's endpoints in id
 * order. In: entries (a pointer), capacity (its length in entries), everything else
 * zero. Out: count = endpoints written; when capacity is too small, -ENOSPC with count =
 * the number needed and nothing written to the array (capacity 0 asks for the count).
 *
 * UTCP_IOC_ENDPOINT_OPEN returns a new fd (O_CLOEXEC) on the same open endpoint file the
 * endpoint was created with -- the one its application holds -- so a restarted registry
 * again holds its own reference. Out: file_refs = the references to that file other than
 * the new fd, counted as the new one was taken (what UTCP_IOC_EP_STATS would have said
 * without the registry's). -ENOENT if no such endpoint, or its file is being released.
 */
struct utcp_persist {
	__u32 persist;		/* 1: park on close; 0: detach on close */
	__u32 flags;		/* zero */
	__u64 reserved;		/* zero */
};

struct utcp_adopt {
	__s32 ifindex;		/* in */
	__u32 flags;		/* in: zero */
	__u32 endpoints;	/* in: zero; out: endpoints of the adopted attachment */
	__u32 prog_id;		/* in: zero; out: BPF id of its classifier, 0 = none */
	__u64 reserved;		/* zero */
};

struct utcp_endpoint_entry {
	__u32 id;
	__u32 flags;		/* UTCP_EPF_* */
	struct utcp_template tmpl;
	__u32 tcp_flags;	/* UTCP_EPT_*: what its frames told the wire so far */
	__u32 reserved;		/* zero */
};

struct utcp_endpoint_list {
	__u64 entries;		/* in: user pointer to struct utcp_endpoint_entry[capacity] */
	__u32 capacity;		/* in */
	__u32 count;		/* in: zero; out: written, or needed with -ENOSPC */
	__u32 flags;		/* zero */
	__u32 reserved0;	/* zero */
	__u64 reserved;		/* zero */
};

struct utcp_endpoint_open {
	__u32 id;		/* in */
	__u32 flags;		/* in: zero */
	__s32 fd;		/* in: zero; out: the new fd */
	__u32 file_refs;	/* in: zero; out: other references to the endpoint file */
	__u64 reserved;		/* zero */
};

#define UTCP_IOC_SET_PERSIST	_IOW(UTCP_IOC_MAGIC, 0x0a, struct utcp_persist)
#define UTCP_IOC_ADOPT		_IOWR(UTCP_IOC_MAGIC, 0x0b, struct utcp_adopt)
#define UTCP_IOC_ENDPOINT_LIST	_IOWR(UTCP_IOC_MAGIC, 0x0c, struct utcp_endpoint_list)
#define UTCP_IOC_ENDPOINT_OPEN	_IOWR(UTCP_IOC_MAGIC, 0x0d, struct utcp_endpoint_open)

/* ---- endpoint ioctls (endpoint file only) ---- */

/*
 * UTCP_IOC_TX: send every TX descriptor published since the last call. Returns the
 * number of frames sent; when none was sent: -EPERM if the first refused frame broke
 * the template, -EINVAL if it was malformed (or tx_prod is more than a ring ahead of
 * tx_cons: nothing is read then), -EMSGSIZE for a UDP frame beyond the MTU, -EAGAIN if
 * the rate limit held it back, -ENOBUFS if no skb could be allocated (it stays queued),
 * -ENOTCONN if the endpoint was destroyed or its control file detached (also when the
 * device was unregistered), -ENETDOWN if the device is down.
 * The optional argument (may be NULL) receives the details.
 */
struct utcp_tx_result {
	__u32 sent;
	__u32 refused;		/* completed with an UTCP_TXF_ERR_* status */
	__u32 pending;		/* still queued (rate limit or allocation failure) */
	__s32 first_error;	/* negative errno of the first refusal, or 0 */
	__u64 reserved;
};

/*
 * UTCP_IOC_EP_INFO: what an endpoint file is (so an fd received over SCM_RIGHTS
 * describes itself): its id, its template (read-only here) and its ring layout.
 */
struct utcp_endpoint_info {
	__u32 id;
	__u32 flags;		/* UTCP_EPF_* */
	struct utcp_template tmpl;
	struct utcp_ring_layout layout;
	__u64 reserved[2];
};

#define UTCP_IOC_TX		_IOR(UTCP_IOC_MAGIC, 0x10, struct utcp_tx_result)
#define UTCP_IOC_EP_STATS	_IOR(UTCP_IOC_MAGIC, 0x11, struct utcp_endpoint_stats)
#define UTCP_IOC_EP_INFO	_IOR(UTCP_IOC_MAGIC, 0x12, struct utcp_endpoint_info)

/*
 * What the application's library says about its connection, for observers (`utcpctl
 * ss` through utcpd): the library writes it into the header page of the mapping at
 * UTCP_APP_INFO_OFF [U]; UTCP_IOC_EP_APP_INFO returns a consistent copy. The module
 * never interprets it and every reader must treat each field as the application's
 * claim — fit to display, never to base a decision on. Writers follow a seqlock: seq
 * odd while fields change, even (and magic set) when they are stable. The ioctl
 * returns -ENODATA if nothing was published, -EAGAIN if no stable copy was seen.
 */
#define UTCP_APP_INFO_OFF	1024	/* within struct utcp_ring_header's page */
#define UTCP_APP_INFO_MAGIC	0x49505455	/* "UTPI" */
#define UTCP_APPF_SACK		(1u << 0)
#define UTCP_APPF_TIMESTAMPS	(1u << 1)
#define UTCP_APPF_WSCALE	(1u << 2)
#define UTCP_APPF_RECOVERY	(1u << 3)	/* in loss recovery */
struct utcp_app_info {
	__u32 seq;
	__u32 magic;		/* UTCP_APP_INFO_MAGIC */
	__u32 pid;		/* of the publishing process */
	__u8 state;		/* RFC 9293: 0 CLOSED 1 LISTEN 2 SYN-SENT 3 SYN-RECEIVED
				 * 4 ESTABLISHED 5 FIN-WAIT-1 6 FIN-WAIT-2 7 CLOSE-WAIT
				 * 8 CLOSING 9 LAST-ACK 10 TIME-WAIT */
	__u8 flags;		/* UTCP_APPF_* */
	__u8 snd_wscale;
	__u8 rcv_wscale;
	__u32 local_ip, remote_ip;	/* network order */
	__u16 local_port, remote_port;	/* network order */
	__u32 snd_una, snd_nxt, rcv_nxt;
	__u32 snd_wnd, rcv_wnd;	/* bytes */
	__u32 snd_mss, rcv_mss;
	__u32 cwnd, ssthresh;	/* bytes */
	__u32 srtt_us, rttvar_us, rto_us;
	__u32 send_queue, recv_queue;	/* bytes not yet acknowledged / not yet read */
	__u32 reserved0;
	__u64 bytes_sent, bytes_received;
	__u64 segs_out, segs_in;
	__u64 retransmits, timeouts;
	char congestion[16];	/* NUL-terminated */
	__u64 updated_us;	/* the stack's clock at the last update */
	__u64 reserved[4];
};

#define UTCP_IOC_EP_APP_INFO	_IOR(UTCP_IOC_MAGIC, 0x13, struct utcp_app_info)

/*
 * UTCP_IOC_TX_WAIT (UTCP_ABI_F_TX_WAIT): what UTCP_IOC_TX does, then, unless the RX
 * ring already holds a frame, sleep until one is delivered, `timeout_ns` passes (0: do
 * not sleep; -1: no limit), a signal comes, or the endpoint is detached. A request and
 * the wait for its response cost one call. Returns the frames sent (>= 0, as
 * UTCP_IOC_TX; 0 when nothing was queued) with `tx` and `rx_ready` filled in, or a
 * negative errno: UTCP_IOC_TX's when nothing could be sent for that reason (no wait
 * then: the caller must handle it first), -EINVAL for unknown flags, reserved not zero
 * or a negative timeout other than -1, -EFAULT for a bad pointer. A wait cut short by a
 * signal is not an error: rx_ready says whether frames are there.
 * UTCP_TXW_DATA: sleep until a frame other than a bare TCP ACK (no payload, no SYN, FIN,
 * RST or URG) is in the ring: for a caller that waits for data and has nothing left to
 * send, a peer's ACK of its request is no reason to wake (the kernel's TCP wakes a
 * reader for data, not for ACKs). The ACKs stay in the ring for the next receive.
 */
struct utcp_tx_wait {
	struct utcp_tx_result tx;	/* out: as UTCP_IOC_TX's */
	__s64 timeout_ns;	/* in: longest sleep; 0 none, -1 unlimited */
	__u32 flags;		/* in: UTCP_TXW_* */
	__u32 rx_ready;		/* out: 1 when the RX ring holds a frame on return */
	__u64 reserved;		/* in: 0 */
};

#define UTCP_TXW_DATA		(1u << 0)

#define UTCP_IOC_TX_WAIT	_IOWR(UTCP_IOC_MAGIC, 0x14, struct utcp_tx_wait)

/*
 * Classifier maps (BPF hash maps of the classifier program, filled by user space).
 * Keys are as seen on a received frame: local = destination, remote = source.
 * Value: __u32 endpoint id. The exact map is tried first, then the listener map with
 * the local address, then with local_ip 0 (any address).
 */
struct utcp_flow_key {
	__be32 local_ip;
	__be32 remote_ip;
	__be16 local_port;
	__be16 remote_port;
	__u8 proto;
	__u8 pad[3];		/* zero */
};

struct utcp_listen_key {
	__be32 local_ip;
	__be16 local_port;
	__u8 proto;
	__u8 pad;		/* zero */
};

#define UTCP_FLOW_MAP_NAME	"utcp_flows"
#define UTCP_LISTEN_MAP_NAME	"utcp_listeners"
#define UTCP_CLASSIFIER_PROG	"utcp_classify"

#endif /* _UAPI_LINUX_UTCP_H */
