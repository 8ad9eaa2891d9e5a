// protocol.h - the request protocol between applications (libutcp) and utcpd.
//
// Messages travel over a SOCK_SEQPACKET Unix socket, one message per packet, so
// boundaries are kept by the kernel. Every message starts with RegHeader; all fields are
// fixed-width, host byte order (both ends are on one host), reserved fields must be zero.
// The daemon validates every field of every request (validate_request) and answers a bad
// one with an error reply; it never trusts a length it has not checked against the
// packet it received.
#pragma once

#include <linux/utcp.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace utcp::registry {

inline constexpr uint32_t kMagic = 0x50435455;  // "UTCP"
inline constexpr uint16_t kProtocolVersion = 5;  // 2: Listen with kListenAccept, Accept
                                                 // 3: RingSize in Connect, Listen, Accept;
                                                 //    Release flags (kReleaseNoReply)
                                                 // 4: Listen flag kListenReuseAddr
                                                 // 5: Connect flag kConnectReuse
inline constexpr size_t kMaxMessage = 65536;
inline constexpr const char* kDefaultSocketPath = "/run/utcp/utcpd.sock";

enum class MsgType : uint16_t {
  kHello = 1,    // -> HelloReply
  kConnect = 2,  // -> EndpointReply + endpoint fd: an endpoint for one connection
  kListen = 3,   // -> EndpointReply (+ endpoint fd without kListenAccept: a listener endpoint)
  kRelease = 4,  // give back an endpoint's port, or close a listen (also implicit when the
                 // client's socket closes)
  kAccept = 5,   // -> EndpointReply + endpoint fd + state: one connection of a kListenAccept listen
  kList = 6,     // -> ListReply + ListEntry[count]: every endpoint utcpd handed out (utcpctl ss)
  kReply = 0x8000,
};

struct RegHeader {
  uint32_t magic = kMagic;
  uint16_t version = kProtocolVersion;
  uint16_t type = 0;
  uint32_t length = 0;  // whole message, header included
  uint32_t seq = 0;     // echoed in the reply
};
static_assert(sizeof(RegHeader) == 16);

struct HelloRequest {
  RegHeader hdr;
  uint32_t client_abi = 0;  // UTCP_ABI_VERSION the client was built with
  uint32_t reserved = 0;
};
static_assert(sizeof(HelloRequest) == 24);

// The rings an endpoint should get (paper §3.3: the shared memory of one connection). Each
// field 0 = utcpd's default for it (its configuration: small rings, enough for a 256 KiB
// window of MTU-sized frames). Entries are powers of two, slot_size a multiple of
// kRingSlotAlign (at least kMinRingSlot; a slot holds one frame, so slots bigger than an
// Ethernet frame are what lets the library send GSO frames). utcpd clamps each field to
// its configured maximum (max_rx_entries, max_tx_entries, max_slot_size), as the kernel
// clamps SO_RCVBUF to rmem_max; the rings granted are visible in the endpoint's layout.
struct RingSize {
  uint16_t rx_entries = 0;
  uint16_t tx_entries = 0;
  uint32_t slot_size = 0;
};
static_assert(sizeof(RingSize) == 8);
inline constexpr uint32_t kRingSlotAlign = UTCP_SLOT_ALIGN;
inline constexpr uint32_t kMinRingSlot = 1536;  // one frame of MTU 1500 (1514 bytes), aligned
inline constexpr uint32_t kMaxRingSlot = UTCP_MAX_SLOT_SIZE;
inline constexpr uint32_t kMaxRingEntries = UTCP_MAX_RING_ENTRIES;

// ConnectRequest flags.
inline constexpr uint32_t kConnectHandshake = 1;  // utcpd runs the three-way handshake (paper §3.4)
                                                  // and sends the connection's state with the reply
inline constexpr uint32_t kConnectUdp = 2;        // a UDP endpoint (UDP template, UDP port) for
                                                  // datagrams to and from remote:port
// Not a new endpoint: the TCP endpoint `reuse_id`, granted to this client for a connection
// that is over, for the new one. utcpd gives it a new local port (or `local_port`), moves
// its classifier entry and template to the new 4-tuple (the module starts its TCP
// tracking afresh), gives the old port back, and answers without an endpoint file: the
// client keeps the file and its mapping of the rings, so a connection after the first
// costs no endpoint creation, no mmap and no munmap. Frames of the old connection still
// in the RX ring are the client's to drop. A refusal leaves the endpoint as it was (still
// granted, on its old 4-tuple). Not with kConnectHandshake or kConnectUdp.
inline constexpr uint32_t kConnectReuse = 4;

struct ConnectRequest {
  RegHeader hdr;
  uint32_t remote_ip = 0;    // host order
  uint16_t remote_port = 0;
  uint16_t local_port = 0;   // 0 = an ephemeral port
  uint32_t flags = 0;        // kConnect* bits
  uint32_t reuse_id = 0;     // kConnectReuse: the endpoint to reuse; else 0
  RingSize rings;            // of the connection's endpoint (kConnectReuse: 0, the rings stay)
};
static_assert(sizeof(ConnectRequest) == 40);

// ListenRequest flags.
inline constexpr uint32_t kListenAccept = 1;  // utcpd listens and accepts for the client (paper
                                              // §3.4): it keeps the listener endpoint and answers
                                              // the SYNs; the reply carries no fd, its endpoint_id
                                              // is the listen id that Accept requests name
inline constexpr uint32_t kListenReuseAddr = 2;  // with kListenAccept, the program's SO_REUSEADDR:
                                                 // the port may be one utcpd still holds only for
                                                 // the connections of an earlier listen on it (in
                                                 // TIME-WAIT, or still open), as Linux allows; never
                                                 // one with a live listen or held by anyone else.
                                                 // (Protocol 4: a client of 3 or older is refused
                                                 // with EPROTONOSUPPORT and utcpd's explanation.)

// With kListenAccept the registry's SYN queue and its queue of established connections
// nobody has claimed yet are each bounded by `backlog` (0: 128; capped at kMaxBacklog).
inline constexpr uint16_t kDefaultBacklog = 128;
inline constexpr uint16_t kMaxBacklog = 1024;

struct ListenRequest {
  RegHeader hdr;
  uint32_t local_ip = 0;     // 0 = the registry's interface address
  uint16_t local_port = 0;   // 0 = an ephemeral port
  uint16_t backlog = 0;
  uint32_t flags = 0;        // kListen* bits
  uint32_t reserved = 0;
  RingSize rings;            // of the listener endpoint (without kListenAccept; with it the
                             // listener stays in utcpd, which sizes it itself)
};
static_assert(sizeof(ListenRequest) == 40);

// AcceptRequest flags.
inline constexpr uint32_t kAcceptWait = 1;  // answer once a connection is established (else
                                            // -EAGAIN at once when none is ready)

// One established connection of a listen: the reply is an EndpointReply with the new
// connection's own endpoint (exact 4-tuple template) and its exported TCP state.
struct AcceptRequest {
  RegHeader hdr;
  uint32_t listen_id = 0;  // endpoint_id of the kListenAccept reply
  uint32_t flags = 0;      // kAccept* bits
  uint32_t reserved = 0;
  RingSize rings;          // of the accepted connection's endpoint
};
static_assert(sizeof(AcceptRequest) == 36);

// ReleaseRequest flags.
inline constexpr uint32_t kReleaseNoReply = 1;  // no answer, not even an error: the client
                                                // goes on at once (a closing connection
                                                // need not wait a round trip for utcpd)

struct ReleaseRequest {
  RegHeader hdr;
  uint32_t endpoint_id = 0;
  uint32_t flags = 0;  // kRelease* bits
};
static_assert(sizeof(ReleaseRequest) == 24);

struct HelloReply {
  RegHeader hdr;
  int32_t error = 0;  // 0 or -errno
  uint32_t module_abi = 0;
  uint32_t ifindex = 0;
  uint32_t local_ip = 0;
  uint8_t local_mac[6] = {};
  uint16_t mtu = 0;
  char message[64] = {};  // why, when error != 0
};
static_assert(sizeof(HelloReply) == 104);

// The facts a library needs to build frames that pass the endpoint's template.
struct EndpointReply {
  RegHeader hdr;
  int32_t error = 0;  // 0 or -errno; on success one fd (the endpoint) rides along,
                      // except for kConnectReuse (the client has it) and kListenAccept
  uint32_t endpoint_id = 0;
  uint32_t local_ip = 0, remote_ip = 0;  // remote 0 for a listener
  uint16_t local_port = 0, remote_port = 0;
  uint8_t local_mac[6] = {};
  uint8_t next_hop_mac[6] = {};          // zero for a listener: learnt per connection
  uint16_t mtu = 0;
  uint16_t reserved0 = 0;
  uint32_t ifindex = 0;
  uint32_t state_len = 0;  // bytes of exported TCP state following this struct (kConnectHandshake)
  char message[64] = {};
};
static_assert(sizeof(EndpointReply) == 124);
inline constexpr size_t kMaxStateLen = kMaxMessage - sizeof(EndpointReply);

// Rings for a receive window of `rcvbuf` bytes and a send buffer of `sndbuf` bytes in
// frames of at most `max_frame` bytes (the slot size, rounded up to kRingSlotAlign; a
// frame of MTU 1500 needs 1514): RX slots for a window of full segments (a quarter slot
// each with GRO-sized slots), TX slots for the send buffer in slot-sized GSO frames, each
// a power of two within kMaxRingEntries. 0 for a size = the registry's default for that
// field. E.g. 4 MiB each way in 64 KiB slots: 256 RX, 64 TX (about 20 MiB).
RingSize rings_for(uint32_t rcvbuf, uint32_t sndbuf, uint32_t max_frame);

// What utcpd knows of every endpoint it handed out, page by page: a ListRequest from
// `start` (0 first, then the previous reply's `next`) gets up to kListMax entries; `next`
// 0 means that was the last page. Any local user may list (as ss(8) shows every
// socket); pids and what applications published are shown only to root and to the
// owner of the entry.
struct ListRequest {
  RegHeader hdr;
  uint32_t start = 0;
  uint32_t reserved = 0;
};
static_assert(sizeof(ListRequest) == 24);

enum class ListRole : uint8_t {
  kConnection = 1,  // an application's connection (or UDP flow)
  kHandshake = 2,   // utcpd runs its three-way handshake right now (paper §3.4)
  kListener = 3,    // an application's listener endpoint (its own stack answers SYNs)
  kListen = 4,      // a listen utcpd accepts on for an application (kListenAccept)
  kHeld = 5,        // the application exited; another process still holds the endpoint file
  kInherited = 6,   // the application exited; utcpd finishes the connection (`orphan`)
};
// ListEntry::orphan: how utcpd finishes an inherited connection (registry/inherit.h).
enum class ListOrphan : uint8_t { kNone = 0, kTimeWait = 1, kLastAck = 2, kReset = 3 };

struct ListEntry {
  uint32_t endpoint_id = 0;
  int32_t pid = 0;           // the application's; 0 if hidden or none
  uint32_t uid = 0;
  uint8_t proto = 0;         // IPPROTO_TCP or IPPROTO_UDP
  uint8_t role = 0;          // ListRole
  uint8_t orphan = 0;        // ListOrphan
  uint8_t app_valid = 0;     // 1: `app` is what the endpoint's stack published (a claim of
                             // the application: shown, never trusted)
  uint32_t local_ip = 0, remote_ip = 0;  // host order; remote 0 for listens
  uint16_t local_port = 0, remote_port = 0;
  uint32_t reserved = 0;
  uint64_t accepted = 0;     // kListen: connections handed over so far
  utcp_endpoint_stats module{};  // the module's counters for the endpoint
  utcp_app_info app{};
};
static_assert(sizeof(ListEntry) == 344);

struct ListReply {
  RegHeader hdr;
  int32_t error = 0;
  uint32_t count = 0;        // ListEntry records following this struct
  uint32_t next = 0;         // start of the next page; 0: no more
  uint32_t total = 0;        // entries in all pages when this one was made
  char message[64] = {};
};
static_assert(sizeof(ListReply) == 96);
inline constexpr uint32_t kListMax = (kMaxMessage - sizeof(ListReply)) / sizeof(ListEntry);

// Checks a received request: sizes, magic, version, type, reserved fields. Returns 0 or
// -errno with `why` set to a message for the reply.
int validate_request(std::span<const uint8_t> msg, std::string* why);

}  // namespace utcp::registry
