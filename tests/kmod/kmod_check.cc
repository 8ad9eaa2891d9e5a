// kmod_check.cc - the module's checks inside the VM: errno table, template enforcement,
// user-to-user exchange, isolation, kernel peer, lifecycle, ring memory and fuzzing. One subcommand
// per area; each prints PASS/FAIL lines and exits 0 only if everything passed.
#include <grp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <random>

#include "kmod_test_util.h"
#include "wire/frame.h"

namespace {

using kt::Report;

struct Env {
  std::string ns_a = kt::env("UTCP_NS_A", "utcp-a"), ns_b = kt::env("UTCP_NS_B", "utcp-b");
  std::string if_a = kt::env("UTCP_IF_A", "va"), if_b = kt::env("UTCP_IF_B", "vb");
  std::string ip_a = kt::env("UTCP_IP_A", "10.77.0.1"), ip_b = kt::env("UTCP_IP_B", "10.77.0.2");
};

int xioctl(int fd, unsigned long cmd, void* arg) {
  return ::ioctl(fd, cmd, arg) < 0 ? errno : 0;
}

const char* ename(int e) {
  static char buf[32];
  if (!e) return "0";
  const char* n = strerrorname_np(e);
  if (n) return n;
  std::snprintf(buf, sizeof(buf), "%d", e);
  return buf;
}

// Checks that `got` is the expected errno (0 = success).
void expect_errno(Report& r, const char* name, int want, int got) {
  r.check(want == got, name, "want %s got %s", ename(want), ename(got));
}

utcp_template udp_tmpl(const kt::Side& s, uint16_t lport, utcp::Ipv4Addr remote, uint16_t rport) {
  return utcp::make_template(s.mac, IPPROTO_UDP, s.addr, lport, remote, rport);
}

utcp_global_stats gstats(int ctl) {
  utcp_global_stats g{};
  utcp::ctl_global_stats(ctl, &g);
  return g;
}

// ---- errno table ----

int cmd_errno(const Env& e) {
  Report r;
  kt::Side a;
  std::string err;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, false, &err)) return std::printf("FAIL: errno_setup %s\n", err.c_str()), 1;
  int ctl = a.ctl;
  int ifindex = int(if_nametoindex(e.if_a.c_str()));

  utcp_abi_info abi{};
  expect_errno(r, "abi_info_size_zero", EINVAL, xioctl(ctl, UTCP_IOC_ABI_INFO, &abi));
  abi.size = sizeof(abi);
  abi.reserved[2] = 1;
  expect_errno(r, "abi_info_reserved", EINVAL, xioctl(ctl, UTCP_IOC_ABI_INFO, &abi));
  expect_errno(r, "abi_info_bad_pointer", EFAULT, xioctl(ctl, UTCP_IOC_ABI_INFO, reinterpret_cast<void*>(8)));
  expect_errno(r, "unknown_ioctl", ENOTTY, xioctl(ctl, _IOW(UTCP_IOC_MAGIC, 0x7f, int), &ifindex));
  expect_errno(r, "tx_on_control_file", ENOTTY, xioctl(ctl, UTCP_IOC_TX, nullptr));
  utcp_endpoint_stats es{};
  expect_errno(r, "ep_stats_on_control_file", ENOTTY, xioctl(ctl, UTCP_IOC_EP_STATS, &es));

  // attach
  utcp_attach at{};
  at.ifindex = ifindex;
  expect_errno(r, "attach_again", EISCONN, xioctl(ctl, UTCP_IOC_ATTACH, &at));
  int ctl2 = utcp::open_module(&err);
  at.reserved = 1;
  expect_errno(r, "attach_reserved", EINVAL, xioctl(ctl2, UTCP_IOC_ATTACH, &at));
  at.reserved = 0;
  at.flags = 1;
  expect_errno(r, "attach_flags", EINVAL, xioctl(ctl2, UTCP_IOC_ATTACH, &at));
  at.flags = 0;
  at.ifindex = 0;
  expect_errno(r, "attach_ifindex_zero", ENODEV, xioctl(ctl2, UTCP_IOC_ATTACH, &at));
  at.ifindex = 99999;
  expect_errno(r, "attach_ifindex_absent", ENODEV, xioctl(ctl2, UTCP_IOC_ATTACH, &at));
  at.ifindex = int(if_nametoindex("lo"));
  expect_errno(r, "attach_loopback_not_ethernet", EOPNOTSUPP, xioctl(ctl2, UTCP_IOC_ATTACH, &at));
  at.ifindex = ifindex;
  expect_errno(r, "attach_device_taken", EBUSY, xioctl(ctl2, UTCP_IOC_ATTACH, &at));
  expect_errno(r, "attach_bad_pointer", EFAULT, xioctl(ctl2, UTCP_IOC_ATTACH, reinterpret_cast<void*>(8)));
  expect_errno(r, "detach_not_attached", ENOTCONN, xioctl(ctl2, UTCP_IOC_DETACH, nullptr));

  // classifier
  utcp_classifier c{};
  c.prog_fd = 12345;
  expect_errno(r, "classifier_bad_fd", EBADF, xioctl(ctl, UTCP_IOC_SET_CLASSIFIER, &c));
  c.prog_fd = -7;
  expect_errno(r, "classifier_negative_fd", EBADF, xioctl(ctl, UTCP_IOC_SET_CLASSIFIER, &c));
  int devnull = ::open("/dev/null", O_RDONLY);
  c.prog_fd = devnull;
  expect_errno(r, "classifier_not_bpf", EINVAL, xioctl(ctl, UTCP_IOC_SET_CLASSIFIER, &c));
  ::close(devnull);
  c.prog_fd = -1;
  c.reserved = 1;
  expect_errno(r, "classifier_reserved", EINVAL, xioctl(ctl, UTCP_IOC_SET_CLASSIFIER, &c));
  c.reserved = 0;
  expect_errno(r, "classifier_remove", 0, xioctl(ctl, UTCP_IOC_SET_CLASSIFIER, &c));
  int map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "x", 4, 4, 1, nullptr);
  c.prog_fd = map;
  expect_errno(r, "classifier_map_fd", EINVAL, xioctl(ctl, UTCP_IOC_SET_CLASSIFIER, &c));
  if (map >= 0) ::close(map);

  // endpoint create
  utcp_template good = udp_tmpl(a, 5000, kt::ip(e.ip_b), 6000);
  struct Case {
    const char* name;
    int want;
    void (*mutate)(utcp_endpoint_create&);
  };
  const Case cases[] = {
      {"create_rx_not_pow2", EINVAL, [](utcp_endpoint_create& x) { x.rx_entries = 3; }},
      {"create_rx_zero", EINVAL, [](utcp_endpoint_create& x) { x.rx_entries = 0; }},
      {"create_rx_huge", EINVAL, [](utcp_endpoint_create& x) { x.rx_entries = 8192; }},
      {"create_tx_not_pow2", EINVAL, [](utcp_endpoint_create& x) { x.tx_entries = 100; }},
      {"create_tx_2pow31", EINVAL, [](utcp_endpoint_create& x) { x.tx_entries = 1u << 31; }},
      {"create_slot_small", EINVAL, [](utcp_endpoint_create& x) { x.slot_size = 64; }},
      {"create_slot_unaligned", EINVAL, [](utcp_endpoint_create& x) { x.slot_size = 2050; }},
      {"create_slot_huge", EINVAL, [](utcp_endpoint_create& x) { x.slot_size = UTCP_MAX_SLOT_SIZE + 64; }},
      {"create_area_too_big", E2BIG, [](utcp_endpoint_create& x) {
         x.rx_entries = x.tx_entries = 4096;
         x.slot_size = UTCP_MAX_SLOT_SIZE;
       }},
      {"create_flags", EINVAL, [](utcp_endpoint_create& x) { x.flags = 2; }},
      {"create_reserved", EINVAL, [](utcp_endpoint_create& x) { x.reserved[1] = 1; }},
      {"create_out_fields_nonzero", EINVAL, [](utcp_endpoint_create& x) { x.fd = 3; }},
      {"create_layout_nonzero", EINVAL, [](utcp_endpoint_create& x) { x.layout.map_size = 1; }},
      {"create_proto_icmp", EPROTONOSUPPORT, [](utcp_endpoint_create& x) { x.tmpl.proto = 1; }},
      {"create_no_local_ip", EINVAL, [](utcp_endpoint_create& x) { x.tmpl.local_ip = 0; }},
      {"create_no_local_port", EINVAL, [](utcp_endpoint_create& x) { x.tmpl.local_port = 0; }},
      {"create_multicast_mac", EINVAL, [](utcp_endpoint_create& x) { x.tmpl.src_mac[0] = 1; }},
      {"create_connected_no_port", EINVAL, [](utcp_endpoint_create& x) { x.tmpl.remote_port = 0; }},
      {"create_listener_with_remote", EINVAL, [](utcp_endpoint_create& x) { x.tmpl.flags = UTCP_TMPL_F_LISTENER; }},
      {"create_template_flags", EINVAL, [](utcp_endpoint_create& x) { x.tmpl.flags = 0x80; }},
      {"create_template_reserved", EINVAL, [](utcp_endpoint_create& x) { x.tmpl.reserved1 = 1; }},
  };
  for (const Case& k : cases) {
    utcp_endpoint_create x{};
    x.rx_entries = x.tx_entries = 64;
    x.slot_size = 2048;
    x.tmpl = good;
    k.mutate(x);
    int got = xioctl(ctl, UTCP_IOC_ENDPOINT_CREATE, &x);
    if (!got) ::close(x.fd);
    expect_errno(r, k.name, k.want, got);
  }
  expect_errno(r, "create_bad_pointer", EFAULT, xioctl(ctl, UTCP_IOC_ENDPOINT_CREATE, reinterpret_cast<void*>(8)));

  utcp::EndpointHandle h;
  int fd = utcp::ctl_create_endpoint(ctl, good, 64, 64, 2048, &h);
  r.check(fd >= 0 && h.id > 0, "create_ok", "rc %d", fd);
  r.check((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "create_fd_cloexec");
  r.check(h.layout.map_size >= h.layout.slots_off + uint64_t(128) * 2048 && h.layout.slots_off % 4096 == 0,
          "create_layout_sane", "map %llu slots_off %u", (unsigned long long)h.layout.map_size, h.layout.slots_off);

  // set template / rate / stats / destroy on bad ids and bad input
  utcp_endpoint_template et{};
  et.tmpl = good;
  et.id = 0;
  expect_errno(r, "template_id_zero", ENOENT, xioctl(ctl, UTCP_IOC_SET_TEMPLATE, &et));
  et.id = 4000;
  expect_errno(r, "template_id_absent", ENOENT, xioctl(ctl, UTCP_IOC_SET_TEMPLATE, &et));
  et.id = h.id;
  et.tmpl.proto = 47;
  expect_errno(r, "template_bad_proto", EPROTONOSUPPORT, xioctl(ctl, UTCP_IOC_SET_TEMPLATE, &et));
  et.tmpl = good;
  et.flags = 1;
  expect_errno(r, "template_flags", EINVAL, xioctl(ctl, UTCP_IOC_SET_TEMPLATE, &et));
  et.flags = 0;
  expect_errno(r, "template_ok", 0, xioctl(ctl, UTCP_IOC_SET_TEMPLATE, &et));
  expect_errno(r, "template_ctl_ioctl_on_other_ctl", ENOENT, xioctl(ctl2, UTCP_IOC_SET_TEMPLATE, &et));

  utcp_rate_limit rl{};
  rl.id = h.id;
  rl.bytes_per_sec = UTCP_MAX_RATE + 1;
  rl.burst_bytes = 1000;
  expect_errno(r, "rate_too_high", ERANGE, xioctl(ctl, UTCP_IOC_SET_RATE, &rl));
  rl.bytes_per_sec = 1000;
  rl.burst_bytes = 0;
  expect_errno(r, "rate_no_burst", EINVAL, xioctl(ctl, UTCP_IOC_SET_RATE, &rl));
  rl.burst_bytes = 100;
  rl.reserved = 1;
  expect_errno(r, "rate_reserved", EINVAL, xioctl(ctl, UTCP_IOC_SET_RATE, &rl));
  rl.reserved = 0;
  rl.id = 77;
  expect_errno(r, "rate_id_absent", ENOENT, xioctl(ctl, UTCP_IOC_SET_RATE, &rl));

  utcp_endpoint_stats st{};
  st.id = 99;
  expect_errno(r, "ep_stats_id_absent", ENOENT, xioctl(ctl, UTCP_IOC_ENDPOINT_STATS, &st));
  st.id = h.id;
  st.rx_frames = 5;
  expect_errno(r, "ep_stats_nonzero_in", EINVAL, xioctl(ctl, UTCP_IOC_ENDPOINT_STATS, &st));
  st.rx_frames = 0;
  expect_errno(r, "ep_stats_ok", 0, xioctl(ctl, UTCP_IOC_ENDPOINT_STATS, &st));

  // endpoint file: data only
  expect_errno(r, "attach_on_endpoint_file", ENOTTY, xioctl(fd, UTCP_IOC_ATTACH, &at));
  expect_errno(r, "set_template_on_endpoint_file", ENOTTY, xioctl(fd, UTCP_IOC_SET_TEMPLATE, &et));
  expect_errno(r, "create_on_endpoint_file", ENOTTY, xioctl(fd, UTCP_IOC_ENDPOINT_CREATE, &st));
  expect_errno(r, "ep_stats_bad_pointer", EFAULT, xioctl(fd, UTCP_IOC_EP_STATS, reinterpret_cast<void*>(8)));
  expect_errno(r, "ep_info_bad_pointer", EFAULT, xioctl(fd, UTCP_IOC_EP_INFO, reinterpret_cast<void*>(8)));
  expect_errno(r, "tx_result_bad_pointer", EFAULT, xioctl(fd, UTCP_IOC_TX, reinterpret_cast<void*>(8)));
  expect_errno(r, "global_stats_bad_pointer", EFAULT, xioctl(ctl, UTCP_IOC_GLOBAL_STATS, reinterpret_cast<void*>(8)));
  expect_errno(r, "ep_stats_on_endpoint_file", 0, xioctl(fd, UTCP_IOC_EP_STATS, &es));
  r.check(es.id == h.id, "ep_stats_reports_id", "id %u want %u", es.id, h.id);
  void* m = ::mmap(nullptr, h.layout.map_size - 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  r.check(m == MAP_FAILED && errno == EINVAL, "mmap_short_refused");
  m = ::mmap(nullptr, h.layout.map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  r.check(m == MAP_FAILED && errno == EINVAL, "mmap_private_refused");
  m = ::mmap(nullptr, h.layout.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4096);
  r.check(m == MAP_FAILED && errno == EINVAL, "mmap_offset_refused");
  m = ::mmap(nullptr, h.layout.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  r.check(m != MAP_FAILED, "mmap_ok");

  // TX: hostile indices and descriptors
  auto* base = static_cast<uint8_t*>(m);
  auto* hdr = reinterpret_cast<utcp_ring_header*>(base);
  auto* txd = reinterpret_cast<utcp_desc*>(base + h.layout.tx_desc_off);
  hdr->tx_prod.value = 1000;
  expect_errno(r, "tx_prod_beyond_ring", EINVAL, xioctl(fd, UTCP_IOC_TX, nullptr));
  hdr->tx_prod.value = 0;
  expect_errno(r, "tx_nothing_pending", 0, xioctl(fd, UTCP_IOC_TX, nullptr));

  // UTCP_IOC_TX_WAIT: the transmit checks, then a sleep bounded by timeout_ns; a
  // refused batch returns at once, whatever the timeout (-1: no limit).
  {
    utcp_abi_info ai{};
    r.check(utcp::query_abi(fd, &ai) == 0 && (ai.flags & UTCP_ABI_F_TX_WAIT), "tx_wait_abi_flag", "flags 0x%x",
            ai.flags);
    utcp_tx_wait w{};
    expect_errno(r, "tx_wait_on_control_file", ENOTTY, xioctl(ctl, UTCP_IOC_TX_WAIT, &w));
    expect_errno(r, "tx_wait_null", EFAULT, xioctl(fd, UTCP_IOC_TX_WAIT, nullptr));
    expect_errno(r, "tx_wait_bad_pointer", EFAULT, xioctl(fd, UTCP_IOC_TX_WAIT, reinterpret_cast<void*>(8)));
    w.flags = UTCP_TXW_DATA << 1;
    expect_errno(r, "tx_wait_flags", EINVAL, xioctl(fd, UTCP_IOC_TX_WAIT, &w));
    w.flags = 0x80000000u | UTCP_TXW_DATA;
    expect_errno(r, "tx_wait_flags_high", EINVAL, xioctl(fd, UTCP_IOC_TX_WAIT, &w));
    w.flags = 0;
    w.reserved = 1;
    expect_errno(r, "tx_wait_reserved", EINVAL, xioctl(fd, UTCP_IOC_TX_WAIT, &w));
    w.reserved = 0;
    w.timeout_ns = -2;
    expect_errno(r, "tx_wait_timeout_negative", EINVAL, xioctl(fd, UTCP_IOC_TX_WAIT, &w));
    w.timeout_ns = INT64_MIN;
    expect_errno(r, "tx_wait_timeout_int64_min", EINVAL, xioctl(fd, UTCP_IOC_TX_WAIT, &w));
    w.timeout_ns = -1;
    hdr->tx_prod.value = 1000;
    expect_errno(r, "tx_wait_prod_beyond_ring_no_sleep", EINVAL, xioctl(fd, UTCP_IOC_TX_WAIT, &w));
    hdr->tx_prod.value = 0;
    w = {};
    w.tx.sent = 77;  // out fields: whatever comes in is overwritten
    w.rx_ready = 5;
    int rc = ::ioctl(fd, UTCP_IOC_TX_WAIT, &w);
    r.check(rc == 0 && w.tx.sent == 0 && w.rx_ready == 0, "tx_wait_timeout_zero_returns",
            "rc %d sent %u rx_ready %u", rc, w.tx.sent, w.rx_ready);
    w = {};
    w.timeout_ns = 1'000'000;  // nothing will arrive: the timeout ends the sleep
    rc = ::ioctl(fd, UTCP_IOC_TX_WAIT, &w);
    r.check(rc == 0 && w.rx_ready == 0, "tx_wait_timeout_ends_sleep", "rc %d rx_ready %u", rc, w.rx_ready);
    w = {};
    w.flags = UTCP_TXW_DATA;
    w.timeout_ns = 1'000'000;
    rc = ::ioctl(fd, UTCP_IOC_TX_WAIT, &w);
    r.check(rc == 0 && w.rx_ready == 0, "tx_wait_data_timeout_ends_sleep", "rc %d rx_ready %u", rc, w.rx_ready);
  }
  struct DescCase {
    const char* name;
    utcp_desc d;
    int want = EINVAL;
  };
  const uint32_t so = h.layout.slots_off;
  const uint32_t end = uint32_t(h.layout.map_size);
  // uapi UTCP_TXF_SPLIT: headers at offset, hdr_len in the flags' upper half, payload
  // at reserved; both pieces inside the slot area.
  auto split = [](uint32_t hlen) { return UTCP_TXF_SPLIT | (hlen << UTCP_TXF_HDR_SHIFT); };
  const DescCase dcases[] = {
      {"tx_desc_offset_in_header", {0, 60, 0, 0}},
      {"tx_desc_offset_in_desc_ring", {h.layout.tx_desc_off, 60, 0, 0}},
      {"tx_desc_past_end", {end - 30, 60, 0, 0}},
      {"tx_desc_offset_wraps", {0xffffffc0u, 0x100, 0, 0}},
      {"tx_desc_len_zero", {so, 0, 0, 0}},
      {"tx_desc_len_huge", {so, 0x7fffffff, 0, 0}},
      {"tx_desc_flags", {so, 60, 4, 0}},
      {"tx_desc_reserved", {so, 60, 0, 9}},
      {"tx_desc_garbage_frame", {so, 60, 0, 0}, EPERM},
      {"tx_split_hdr_short", {so, 60, split(13), so + 1024}},
      {"tx_split_hdr_long", {so, 300, split(UTCP_TXF_HDR_MAX + 1), so + 1024}},
      {"tx_split_hdr_whole_frame", {so, 60, split(60), so + 1024}},
      {"tx_split_payload_in_header", {so, 60, split(34), 0}},
      {"tx_split_payload_in_desc_ring", {so, 60, split(34), h.layout.tx_desc_off}},
      {"tx_split_payload_past_end", {so, 60, split(34), end - 10}},
      {"tx_split_payload_wraps", {so, 60, split(34), 0xfffffff0u}},
      {"tx_split_header_past_end", {end - 20, 60, split(34), so + 1024}},
      {"tx_split_other_flag", {so, 60, split(34) | UTCP_TXF_SENT, so + 1024}},
      {"tx_split_len_huge", {so, UTCP_MAX_FRAME_LEN + 1, split(34), so + 1024}},
      {"tx_split_garbage_frame", {so, 60, split(34), so + 1024}, EPERM},
  };
  uint32_t prod = 0;
  std::memset(base + so, 0xee, 2048);
  for (const DescCase& k : dcases) {
    txd[prod & 63] = k.d;
    ++prod;
    hdr->tx_prod.value = prod;
    utcp_tx_result res{};
    int got = xioctl(fd, UTCP_IOC_TX, &res);
    bool ok = got == k.want && res.refused == 1 &&
              (txd[(prod - 1) & 63].flags & (UTCP_TXF_ERR_MALFORMED | UTCP_TXF_ERR_TEMPLATE)) &&
              hdr->tx_cons.value == prod;
    r.check(ok, k.name, "errno %s refused %u flags 0x%x cons %u", ename(got), res.refused,
            txd[(prod - 1) & 63].flags, hdr->tx_cons.value);
  }
  st = {};
  st.id = h.id;
  xioctl(ctl, UTCP_IOC_ENDPOINT_STATS, &st);
  // 18 malformed descriptors above, and the two producer indices beyond the ring
  // (UTCP_IOC_TX's and UTCP_IOC_TX_WAIT's).
  r.check(st.tx_malformed == 20 && st.tx_template_rejects == 2 && st.tx_frames == 0, "tx_refusals_counted",
          "malformed %llu template %llu", (unsigned long long)st.tx_malformed,
          (unsigned long long)st.tx_template_rejects);

  // A valid frame over a rate limit: the first fits the burst, the second waits.
  auto f = utcp::frame_for_template(good, kt::read_mac(e.if_a));
  std::string pl(100, 'r');
  f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pl.data()), pl.size());
  std::vector<uint8_t> frame(200);
  frame.resize(utcp::build_frame(f, frame));
  rl = {};
  rl.id = h.id;
  rl.bytes_per_sec = 10;
  rl.burst_bytes = frame.size() + 10;
  expect_errno(r, "rate_set_ok", 0, xioctl(ctl, UTCP_IOC_SET_RATE, &rl));
  for (int i = 0; i < 2; ++i) {
    std::memcpy(base + so + i * 2048, frame.data(), frame.size());
    txd[prod & 63] = {so + uint32_t(i) * 2048, uint32_t(frame.size()), 0, 0};
    ++prod;
  }
  hdr->tx_prod.value = prod;
  utcp_tx_result res{};
  int rc = ::ioctl(fd, UTCP_IOC_TX, &res);
  r.check(rc == 1 && res.sent == 1 && res.pending == 1, "rate_limit_first_sent", "rc %d sent %u pending %u", rc,
          res.sent, res.pending);
  res = {};
  rc = ::ioctl(fd, UTCP_IOC_TX, &res);
  r.check(rc < 0 && errno == EAGAIN && res.pending == 1, "rate_limit_second_eagain", "rc %d errno %s pending %u",
          rc, ename(errno), res.pending);
  rl.bytes_per_sec = 0;
  xioctl(ctl, UTCP_IOC_SET_RATE, &rl);
  rc = ::ioctl(fd, UTCP_IOC_TX, &res);
  r.check(rc == 1 && hdr->tx_cons.value == prod, "rate_limit_lifted_sends_pending", "rc %d", rc);

  // A split frame: the same valid frame as headers in one slot, payload in another. It
  // is sent; with a header that breaks the template it is refused as a whole frame is.
  {
    abi = {};
    r.check(utcp::query_abi(fd, &abi) == 0 && (abi.flags & UTCP_ABI_F_TX_SPLIT), "abi_tx_split", "flags 0x%x",
            abi.flags);
    const uint32_t hlen = uint32_t(frame.size() - pl.size());
    std::memcpy(base + so + 4096, frame.data(), hlen);
    std::memcpy(base + so + 8192 + 3, frame.data() + hlen, pl.size());  // any alignment
    txd[prod & 63] = {so + 4096, uint32_t(frame.size()), split(hlen), so + 8192 + 3};
    ++prod;
    hdr->tx_prod.value = prod;
    res = {};
    rc = ::ioctl(fd, UTCP_IOC_TX, &res);
    r.check(rc == 1 && res.sent == 1 && txd[(prod - 1) & 63].flags == UTCP_TXF_SENT, "tx_split_sent",
            "rc %d sent %u flags 0x%x", rc, res.sent, txd[(prod - 1) & 63].flags);
    base[so + 4096 + 6] ^= 0x01;  // source MAC, in the header piece
    txd[prod & 63] = {so + 4096, uint32_t(frame.size()), split(hlen), so + 8192 + 3};
    ++prod;
    hdr->tx_prod.value = prod;
    res = {};
    rc = xioctl(fd, UTCP_IOC_TX, &res);
    r.check(rc == EPERM && res.refused == 1 && txd[(prod - 1) & 63].flags == UTCP_TXF_ERR_TEMPLATE,
            "tx_split_template_checked", "errno %s flags 0x%x", ename(rc), txd[(prod - 1) & 63].flags);
  }

  // restart ioctls (uapi "Restarting the registry")
  utcp_persist pe{};
  pe.flags = 1;
  expect_errno(r, "persist_flags", EINVAL, xioctl(ctl, UTCP_IOC_SET_PERSIST, &pe));
  pe = {};
  pe.persist = 2;
  expect_errno(r, "persist_not_boolean", EINVAL, xioctl(ctl, UTCP_IOC_SET_PERSIST, &pe));
  pe = {};
  pe.reserved = 1;
  expect_errno(r, "persist_reserved", EINVAL, xioctl(ctl, UTCP_IOC_SET_PERSIST, &pe));
  expect_errno(r, "persist_bad_pointer", EFAULT, xioctl(ctl, UTCP_IOC_SET_PERSIST, reinterpret_cast<void*>(8)));
  pe = {};
  expect_errno(r, "persist_on_endpoint_file", ENOTTY, xioctl(fd, UTCP_IOC_SET_PERSIST, &pe));
  expect_errno(r, "persist_off_ok", 0, xioctl(ctl, UTCP_IOC_SET_PERSIST, &pe));

  utcp_adopt ad{};
  ad.ifindex = ifindex;
  expect_errno(r, "adopt_on_control_file", EISCONN, xioctl(ctl, UTCP_IOC_ADOPT, &ad));
  expect_errno(r, "adopt_on_endpoint_file", ENOTTY, xioctl(fd, UTCP_IOC_ADOPT, &ad));
  {
    int fresh = utcp::open_module(&err);
    ad.flags = 1;
    expect_errno(r, "adopt_flags", EINVAL, xioctl(fresh, UTCP_IOC_ADOPT, &ad));
    ad.flags = 0;
    ad.endpoints = 1;
    expect_errno(r, "adopt_out_field_nonzero", EINVAL, xioctl(fresh, UTCP_IOC_ADOPT, &ad));
    ad.endpoints = 0;
    ad.reserved = 1;
    expect_errno(r, "adopt_reserved", EINVAL, xioctl(fresh, UTCP_IOC_ADOPT, &ad));
    ad.reserved = 0;
    ad.ifindex = 0;
    expect_errno(r, "adopt_ifindex_zero", ENODEV, xioctl(fresh, UTCP_IOC_ADOPT, &ad));
    ad.ifindex = ifindex;  // attached, but its control file is open: nothing parked
    expect_errno(r, "adopt_nothing_parked", ENOENT, xioctl(fresh, UTCP_IOC_ADOPT, &ad));
    expect_errno(r, "adopt_bad_pointer", EFAULT, xioctl(fresh, UTCP_IOC_ADOPT, reinterpret_cast<void*>(8)));
    ::close(fresh);
  }

  utcp_endpoint_entry ents[4] = {};
  utcp_endpoint_list el{};
  el.flags = 1;
  expect_errno(r, "list_flags", EINVAL, xioctl(ctl, UTCP_IOC_ENDPOINT_LIST, &el));
  el = {};
  el.count = 1;
  expect_errno(r, "list_count_in_nonzero", EINVAL, xioctl(ctl, UTCP_IOC_ENDPOINT_LIST, &el));
  el = {};
  expect_errno(r, "list_capacity_zero_enospc", ENOSPC, xioctl(ctl, UTCP_IOC_ENDPOINT_LIST, &el));
  r.check(el.count == 1, "list_enospc_says_needed", "count %u want 1", el.count);
  el = {};
  el.entries = 8;
  el.capacity = 4;
  expect_errno(r, "list_bad_array", EFAULT, xioctl(ctl, UTCP_IOC_ENDPOINT_LIST, &el));
  expect_errno(r, "list_bad_pointer", EFAULT, xioctl(ctl, UTCP_IOC_ENDPOINT_LIST, reinterpret_cast<void*>(8)));
  el = {};
  el.entries = reinterpret_cast<uint64_t>(ents);
  el.capacity = 4;
  expect_errno(r, "list_ok", 0, xioctl(ctl, UTCP_IOC_ENDPOINT_LIST, &el));
  utcp_endpoint_info ei{};
  ::ioctl(fd, UTCP_IOC_EP_INFO, &ei);
  r.check(el.count == 1 && ents[0].id == h.id && std::memcmp(&ents[0].tmpl, &ei.tmpl, sizeof ei.tmpl) == 0 &&
              ents[0].flags == 0 && ents[1].id == 0,
          "list_reports_endpoint", "count %u id %u want %u", el.count, ents[0].id, h.id);
  expect_errno(r, "list_on_endpoint_file", ENOTTY, xioctl(fd, UTCP_IOC_ENDPOINT_LIST, &el));

  utcp_endpoint_open eo{};
  eo.id = 999;
  expect_errno(r, "open_id_absent", ENOENT, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, &eo));
  eo.id = 0;
  expect_errno(r, "open_id_zero", ENOENT, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, &eo));
  eo.id = h.id;
  eo.flags = 1;
  expect_errno(r, "open_flags", EINVAL, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, &eo));
  eo.flags = 0;
  eo.fd = 3;
  expect_errno(r, "open_fd_in_nonzero", EINVAL, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, &eo));
  eo.fd = 0;
  expect_errno(r, "open_bad_pointer", EFAULT, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, reinterpret_cast<void*>(8)));
  expect_errno(r, "open_on_endpoint_file", ENOTTY, xioctl(fd, UTCP_IOC_ENDPOINT_OPEN, &eo));
  expect_errno(r, "open_ok", 0, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, &eo));
  {
    // The same open file: the test's fd and its mapping are the other references.
    utcp_endpoint_stats os{};
    utcp_endpoint_info oi{};
    bool same = eo.fd > 0 && ::ioctl(eo.fd, UTCP_IOC_EP_INFO, &oi) == 0 && oi.id == h.id &&
                ::ioctl(eo.fd, UTCP_IOC_EP_STATS, &os) == 0;
    r.check(same && eo.file_refs == 2 && os.file_refs == 3, "open_same_file_refs_counted",
            "fd %d other refs %u (want 2: fd + mapping) file_refs %u (want 3)", eo.fd, eo.file_refs, os.file_refs);
    if (eo.fd > 0) ::close(eo.fd);
  }

  // destroy
  utcp_endpoint_id eid{};
  eid.id = 999;
  expect_errno(r, "destroy_id_absent", ENOENT, xioctl(ctl, UTCP_IOC_ENDPOINT_DESTROY, &eid));
  eid.id = h.id;
  eid.flags = 1;
  expect_errno(r, "destroy_flags", EINVAL, xioctl(ctl, UTCP_IOC_ENDPOINT_DESTROY, &eid));
  eid.flags = 0;
  expect_errno(r, "destroy_ok", 0, xioctl(ctl, UTCP_IOC_ENDPOINT_DESTROY, &eid));
  expect_errno(r, "destroy_twice", ENOENT, xioctl(ctl, UTCP_IOC_ENDPOINT_DESTROY, &eid));
  expect_errno(r, "tx_after_destroy", ENOTCONN, xioctl(fd, UTCP_IOC_TX, nullptr));
  {
    utcp_tx_wait w{};
    w.timeout_ns = -1;  // no limit, yet it must not sleep on a destroyed endpoint
    expect_errno(r, "tx_wait_after_destroy", ENOTCONN, xioctl(fd, UTCP_IOC_TX_WAIT, &w));
  }
  eo = {};
  eo.id = h.id;
  expect_errno(r, "open_after_destroy", ENOENT, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, &eo));
  pollfd p{fd, POLLIN, 0};
  r.check(::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP), "poll_hup_after_destroy", "revents 0x%x", p.revents);
  hdr->rx_cons.value = 5;  // the mapping stays usable until munmap
  ::munmap(m, h.layout.map_size);
  ::close(fd);
  ::close(ctl2);
  return r.exit_code();
}

// ---- unprivileged caller ----

int cmd_unpriv(const Env&) {
  Report r;
  std::string err;
  int ctl = utcp::open_module(&err);
  r.check(ctl >= 0, "unpriv_open_and_abi", "%s", err.c_str());
  if (ctl < 0) return 1;
  utcp_attach at{};
  at.ifindex = 1;
  expect_errno(r, "unpriv_attach", EPERM, xioctl(ctl, UTCP_IOC_ATTACH, &at));
  utcp_global_stats g{};
  expect_errno(r, "unpriv_global_stats", EPERM, xioctl(ctl, UTCP_IOC_GLOBAL_STATS, &g));
  utcp_endpoint_create c{};
  expect_errno(r, "unpriv_create", EPERM, xioctl(ctl, UTCP_IOC_ENDPOINT_CREATE, &c));
  expect_errno(r, "unpriv_detach", EPERM, xioctl(ctl, UTCP_IOC_DETACH, nullptr));
  utcp_adopt ad{};
  ad.ifindex = 1;
  expect_errno(r, "unpriv_adopt", EPERM, xioctl(ctl, UTCP_IOC_ADOPT, &ad));
  utcp_persist pe{};
  expect_errno(r, "unpriv_persist", EPERM, xioctl(ctl, UTCP_IOC_SET_PERSIST, &pe));
  utcp_endpoint_list el{};
  expect_errno(r, "unpriv_list", EPERM, xioctl(ctl, UTCP_IOC_ENDPOINT_LIST, &el));
  utcp_endpoint_open eo{};
  eo.id = 1;
  expect_errno(r, "unpriv_open", EPERM, xioctl(ctl, UTCP_IOC_ENDPOINT_OPEN, &eo));
  ::close(ctl);
  return r.exit_code();
}

// ---- template enforcement, seen from the peer ----

int cmd_template(const Env& e) {
  Report r;
  std::string err;
  kt::Side a;
  if (!kt::enter_netns(e.ns_b)) return std::printf("FAIL: template_setup netns\n"), 1;
  kt::Capture cap(e.if_b);  // created in B: sees what reaches B's wire end
  utcp::MacAddr mac_b = kt::read_mac(e.if_b);
  if (cap.fd < 0 || !a.setup(e.ns_a, e.if_a, e.ip_a, false, &err))
    return std::printf("FAIL: template_setup %s\n", err.c_str()), 1;
  utcp_template t = udp_tmpl(a, 5000, kt::ip(e.ip_b), 6000);
  auto dev = a.endpoint(t);
  if (!dev) return std::printf("FAIL: template_endpoint\n"), 1;

  struct Spoof {
    const char* name;
    int want;  // errno the TX ioctl reports
    void (*mutate)(utcp::FrameSpec&);
  };
  const Spoof spoofs[] = {
      {"template_valid_frame_sent", 0, [](utcp::FrameSpec&) {}},
      {"template_spoof_src_mac", EPERM, [](utcp::FrameSpec& f) { f.src_mac.b[5] ^= 1; }},
      {"template_spoof_src_ip", EPERM, [](utcp::FrameSpec& f) { f.src_ip.v ^= 0x100; }},
      {"template_spoof_dst_ip", EPERM, [](utcp::FrameSpec& f) { f.dst_ip.v ^= 1; }},
      {"template_spoof_src_port", EPERM, [](utcp::FrameSpec& f) { f.src_port = 22; }},
      {"template_spoof_dst_port", EPERM, [](utcp::FrameSpec& f) { f.dst_port = 53; }},
      {"template_spoof_proto_tcp", EPERM, [](utcp::FrameSpec& f) { f.proto = IPPROTO_TCP; }},
  };
  int i = 0;
  for (const Spoof& s : spoofs) {
    auto f = utcp::frame_for_template(t, mac_b);
    std::string marker = "utcp-spoof-" + std::to_string(i++);
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(marker.data()), marker.size());
    s.mutate(f);
    cap.drain();
    int rc = kt::send_frame(*dev, f);
    auto seen = cap.collect(300);
    bool on_wire = std::any_of(seen.begin(), seen.end(), [&](auto& fr) { return kt::contains(fr, marker); });
    bool ok = s.want ? (rc == -s.want && !on_wire) : (rc == 1 && on_wire);
    r.check(ok, s.name, "tx rc %d (%s) on_wire %d", rc, rc < 0 ? ename(-rc) : "sent", on_wire);
  }
  // Byte-level spoofs: malformed or non-IPv4 frames built from a valid one.
  struct ByteSpoof {
    const char* name;
    int want;
    size_t at;
    uint8_t value;
  };
  const ByteSpoof bytes[] = {
      {"template_spoof_ethertype_arp", EPERM, 13, 0x06},
      {"template_spoof_fragment_mf", EPERM, 20, 0x20},
      {"template_spoof_fragment_offset", EPERM, 21, 0x08},
      {"template_malformed_ip_version", EINVAL, 14, 0x65},
      {"template_malformed_ihl", EINVAL, 14, 0x44},
      {"template_malformed_ihl_past_end", EINVAL, 14, 0x4f},
      {"template_malformed_total_length", EINVAL, 17, 0x10},
      {"template_malformed_udp_length", EINVAL, 39, 0x02},
  };
  for (const ByteSpoof& b : bytes) {
    auto f = utcp::frame_for_template(t, mac_b);
    std::string marker = "utcp-spoof-" + std::to_string(i++);
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(marker.data()), marker.size());
    std::vector<uint8_t> fr(100);
    fr.resize(utcp::build_frame(f, fr));
    fr[b.at] = b.value;
    cap.drain();
    dev->transmit(fr);
    dev->flush(utcp::kInstantZero);
    int rc = dev->last_tx_rc();
    auto seen = cap.collect(200);
    bool on_wire = std::any_of(seen.begin(), seen.end(), [&](auto& x) { return kt::contains(x, marker); });
    r.check(rc == -b.want && !on_wire, b.name, "tx rc %d (%s) on_wire %d", rc, rc < 0 ? ename(-rc) : "sent",
            on_wire);
  }
  // A batch mixing good and bad frames: good ones leave, the count says so.
  {
    auto f = utcp::frame_for_template(t, mac_b);
    std::string ok_marker = "utcp-batch-ok", bad_marker = "utcp-batch-bad";
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ok_marker.data()), ok_marker.size());
    std::vector<uint8_t> good(100), bad(100);
    good.resize(utcp::build_frame(f, good));
    f.src_port = 7;
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bad_marker.data()), bad_marker.size());
    bad.resize(utcp::build_frame(f, bad));
    cap.drain();
    dev->transmit(good);
    dev->transmit(bad);
    dev->transmit(good);
    dev->flush(utcp::kInstantZero);
    auto res = dev->last_tx();
    auto seen = cap.collect(300);
    size_t goods = std::count_if(seen.begin(), seen.end(), [&](auto& x) { return kt::contains(x, ok_marker); });
    size_t bads = std::count_if(seen.begin(), seen.end(), [&](auto& x) { return kt::contains(x, bad_marker); });
    r.check(dev->last_tx_rc() == 2 && res.refused == 1 && res.first_error == -EPERM && goods == 2 && bads == 0,
            "template_mixed_batch", "rc %d refused %u goods %zu bads %zu", dev->last_tx_rc(), res.refused, goods, bads);
  }
  // A listener template accepts any remote, still only its own source.
  {
    utcp_endpoint_template et{};
    et.id = dev->info().id;
    et.tmpl = utcp::make_template(a.mac, IPPROTO_UDP, a.addr, 5000, {}, 0, true);
    r.check(xioctl(a.ctl, UTCP_IOC_SET_TEMPLATE, &et) == 0, "template_replace_with_listener");
    auto f = utcp::frame_for_template(t, mac_b);
    f.dst_port = 4444;
    std::string marker = "utcp-listener";
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(marker.data()), marker.size());
    cap.drain();
    int rc = kt::send_frame(*dev, f);
    auto seen = cap.collect(300);
    bool on_wire = std::any_of(seen.begin(), seen.end(), [&](auto& x) { return kt::contains(x, marker); });
    r.check(rc == 1 && on_wire, "template_listener_any_remote", "rc %d on_wire %d", rc, on_wire);
    f.src_port = 5001;
    r.check(kt::send_frame(*dev, f) == -EPERM, "template_listener_src_port_enforced");
  }
  return r.exit_code();
}

// ---- user-to-user exchange, isolation, kernel peer ----

bool valid_frame(const std::vector<uint8_t>& fr) {
  return utcp::parse_frame(fr, true).has_value();
}

int cmd_exchange(const Env& e) {
  Report r;
  std::string err;
  kt::Side a, b;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, true, &err) || !b.setup(e.ns_b, e.if_b, e.ip_b, true, &err))
    return std::printf("FAIL: exchange_setup %s\n", err.c_str()), 1;
  auto ea = a.endpoint(udp_tmpl(a, 5000, b.addr, 6000));
  auto eb = b.endpoint(udp_tmpl(b, 6000, a.addr, 5000));
  if (!ea || !eb) return std::printf("FAIL: exchange_endpoints\n"), 1;

  // A sleeping receiver is woken by the first frame.
  int woke = -1;
  std::thread waiter([&] { woke = eb->wait(std::chrono::seconds(5)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int n = 50;
  int sent = 0;
  for (int i = 0; i < n; ++i) {
    std::string pl = "a2b-" + std::to_string(i);
    auto f = utcp::frame_for_template(udp_tmpl(a, 5000, b.addr, 6000), b.mac);
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pl.data()), pl.size());
    std::vector<uint8_t> fr(100);
    fr.resize(utcp::build_frame(f, fr));
    ea->transmit(fr);
    if (i % 10 == 9) {
      ea->flush(utcp::kInstantZero);
      sent += std::max(ea->last_tx_rc(), 0);
    }
  }
  waiter.join();
  r.check(woke == 1, "exchange_poll_wakeup", "wait returned %d", woke);
  r.check(sent == n, "exchange_a_sent", "sent %d of %d", sent, n);
  auto got = kt::recv_frames(*eb, 3000, n);
  bool all_valid = std::all_of(got.begin(), got.end(), valid_frame);
  bool in_order = got.size() == size_t(n);
  for (int i = 0; in_order && i < n; ++i) in_order = kt::contains(got[i], "a2b-" + std::to_string(i) + "");
  r.check(got.size() == size_t(n) && all_valid && in_order, "exchange_a_to_b", "got %zu valid %d ordered %d",
          got.size(), all_valid, in_order);

  for (int i = 0; i < n; ++i) {
    std::string pl = "b2a-" + std::to_string(i);
    auto f = utcp::frame_for_template(udp_tmpl(b, 6000, a.addr, 5000), a.mac);
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pl.data()), pl.size());
    std::vector<uint8_t> fr(100);
    fr.resize(utcp::build_frame(f, fr));
    eb->transmit(fr);
  }
  eb->flush(utcp::kInstantZero);
  got = kt::recv_frames(*ea, 3000, n);
  r.check(got.size() == size_t(n) && std::all_of(got.begin(), got.end(), valid_frame), "exchange_b_to_a",
          "got %zu", got.size());

  // A TCP frame beyond the MTU leaves as GSO and arrives whole (veth keeps GSO
  // frames intact) or as segments, always with valid checksums.
  utcp_template ta = utcp::make_template(a.mac, IPPROTO_TCP, a.addr, 7000, b.addr, 8000);
  utcp_template tb = utcp::make_template(b.mac, IPPROTO_TCP, b.addr, 8000, a.addr, 7000);
  auto ga = a.endpoint(ta, nullptr, UTCP_MAX_SLOT_SIZE, 16);
  auto gb = b.endpoint(tb, nullptr, UTCP_MAX_SLOT_SIZE, 16);
  if (!ga || !gb) return r.check(false, "exchange_gso_endpoints"), 1;
  std::vector<uint8_t> big(30000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7);
  auto f = utcp::frame_for_template(ta, b.mac);
  f.payload = big;
  int rc = kt::send_frame(*ga, f);
  r.check(rc == 1, "exchange_gso_sent", "rc %d (%s)", rc, rc < 0 ? ename(-rc) : "");
  got = kt::recv_frames(*gb, 3000, 64);
  size_t payload = 0;
  bool ok = !got.empty();
  for (auto& fr : got) {
    auto p = utcp::parse_frame(fr, true);
    if (!p || !p->tcp) {
      ok = false;
      break;
    }
    payload += p->tcp->payload.size();
  }
  r.check(ok && payload == big.size(), "exchange_gso_received_valid", "frames %zu payload %zu ok %d", got.size(),
          payload, ok);

  // UTCP_ABI_F_TX_TCP_CSUM: the module completes the TCP checksum of every frame, so
  // one sent with only garbage in the field arrives valid.
  {
    utcp_abi_info abi{};
    bool flagged = utcp::query_abi(ga->fd(), &abi) == 0 && (abi.flags & UTCP_ABI_F_TX_TCP_CSUM);
    r.check(flagged, "exchange_abi_tx_tcp_csum", "flags 0x%x", abi.flags);
    std::vector<uint8_t> small_tcp(200);
    auto sf = utcp::frame_for_template(ta, b.mac);
    const std::string pl = "checksum-left-to-the-module";
    sf.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pl.data()), pl.size());
    small_tcp.resize(utcp::build_frame(sf, small_tcp));
    small_tcp[14 + 20 + 16] ^= 0x5a;  // break the TCP checksum
    ga->transmit(small_tcp);
    ga->flush(utcp::kInstantZero);
    auto g2 = kt::recv_frames(*gb, 3000, 1);
    auto p2 = g2.size() == 1 ? utcp::parse_frame(g2[0], true) : std::nullopt;
    r.check(p2 && p2->tcp && p2->tcp->payload.size() == pl.size(), "exchange_tx_tcp_csum_completed",
            "frames %zu valid %d", g2.size(), bool(p2));
  }

  // Stats moved on both sides.
  utcp_endpoint_stats s{};
  eb->stats(&s);
  r.check(s.rx_frames >= size_t(n) && s.tx_frames == size_t(n), "exchange_stats", "rx %llu tx %llu",
          (unsigned long long)s.rx_frames, (unsigned long long)s.tx_frames);
  auto g = gstats(a.ctl);
  r.check(g.classifier_runs > 0 && g.rx_frames >= 2 * size_t(n), "exchange_global_stats",
          "runs %llu rx %llu", (unsigned long long)g.classifier_runs, (unsigned long long)g.rx_frames);

  // Ring full: B stops consuming; drops are counted, nothing breaks.
  std::vector<uint8_t> small(100);
  small.resize(utcp::build_frame(utcp::frame_for_template(udp_tmpl(a, 5000, b.addr, 6000), b.mac), small));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) ea->transmit(small);
    ea->flush(utcp::kInstantZero);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  eb->stats(&s);
  r.check(s.rx_drops_full > 0, "exchange_ring_full_counted", "drops %llu", (unsigned long long)s.rx_drops_full);
  got = kt::recv_frames(*eb, 500, 1000);
  r.check(got.size() == 64, "exchange_ring_full_keeps_ring", "drained %zu (ring 64)", got.size());

  // UTCP_IOC_TX_WAIT (KmodDevice::flush_and_wait): B's request leaves and B sleeps in
  // the same call until A's answer is in its ring.
  {
    std::string req = "tx-wait-request", resp = "tx-wait-response";
    auto fb = utcp::frame_for_template(udp_tmpl(b, 6000, a.addr, 5000), a.mac);
    fb.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(req.data()), req.size());
    std::vector<uint8_t> fr(100);
    fr.resize(utcp::build_frame(fb, fr));
    eb->transmit(fr);
    int woke2 = -1;
    std::thread sleeper([&] { woke2 = eb->flush_and_wait(utcp::kInstantZero, std::chrono::seconds(5)); });
    auto at_a = kt::recv_frames(*ea, 3000, 1);
    r.check(at_a.size() == 1 && kt::contains(at_a[0], req), "exchange_tx_wait_sent", "frames %zu", at_a.size());
    auto fa = utcp::frame_for_template(udp_tmpl(a, 5000, b.addr, 6000), b.mac);
    fa.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(resp.data()), resp.size());
    kt::send_frame(*ea, fa);
    sleeper.join();
    r.check(woke2 == 1 && eb->last_tx_rc() == 1, "exchange_tx_wait_woken", "returned %d, tx rc %d", woke2,
            eb->last_tx_rc());
    auto at_b = kt::recv_frames(*eb, 3000, 1);
    r.check(at_b.size() == 1 && kt::contains(at_b[0], resp), "exchange_tx_wait_answer", "frames %zu", at_b.size());
    // Nothing comes: the timeout ends the sleep with no frame.
    int idle = eb->flush_and_wait(utcp::kInstantZero, std::chrono::milliseconds(5));
    r.check(idle == 0, "exchange_tx_wait_timeout", "returned %d", idle);

    // UTCP_TXW_DATA: a bare TCP ACK stays in the ring without ending the sleep; the
    // data frame behind it ends it. (The sleep's own limit is a minute: only a bare ACK
    // that woke it can make the first check fail.)
    std::atomic<int> woke3{-100};
    std::thread data_sleeper([&] { woke3 = gb->flush_and_wait(utcp::kInstantZero, std::chrono::seconds(60), true); });
    auto ack = utcp::frame_for_template(ta, b.mac);
    ack.tcp_flags = 0x10;  // ACK only, no payload
    int ack_rc = kt::send_frame(*ga, ack);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    r.check(ack_rc == 1 && woke3 == -100, "exchange_tx_wait_data_sleeps_past_bare_ack", "ack sent %d, returned %d",
            ack_rc, woke3.load());
    auto data = utcp::frame_for_template(ta, b.mac);
    const std::string dp = "data-after-ack";
    data.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(dp.data()), dp.size());
    kt::send_frame(*ga, data);
    data_sleeper.join();
    auto both = kt::recv_frames(*gb, 3000, 2);
    r.check(woke3 == 1 && both.size() == 2 && kt::contains(both[1], dp), "exchange_tx_wait_data_woken_by_data",
            "returned %d, frames %zu", woke3.load(), both.size());
  }
  return r.exit_code();
}

int cmd_isolation(const Env& e) {
  Report r;
  std::string err;
  kt::Side a, b;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, true, &err) || !b.setup(e.ns_b, e.if_b, e.ip_b, true, &err))
    return std::printf("FAIL: isolation_setup %s\n", err.c_str()), 1;
  auto a1 = a.endpoint(udp_tmpl(a, 5001, b.addr, 6001));
  auto a2 = a.endpoint(udp_tmpl(a, 5002, b.addr, 6002));
  auto b1 = b.endpoint(udp_tmpl(b, 6001, a.addr, 5001));
  auto b2 = b.endpoint(udp_tmpl(b, 6002, a.addr, 5002));
  auto b3 = b.endpoint(utcp::make_template(b.mac, IPPROTO_UDP, b.addr, 6100, {}, 0, true));
  if (!a1 || !a2 || !b1 || !b2 || !b3) return std::printf("FAIL: isolation_endpoints\n"), 1;
  auto send = [&](utcp::KmodDevice& dev, uint16_t sp, uint16_t dp, const std::string& pl, int count) {
    for (int i = 0; i < count; ++i) {
      auto f = utcp::frame_for_template(dev.info().tmpl, b.mac);
      f.src_port = sp;
      f.dst_port = dp;
      f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pl.data()), pl.size());
      std::vector<uint8_t> fr(100);
      fr.resize(utcp::build_frame(f, fr));
      dev.transmit(fr);
    }
    dev.flush(utcp::kInstantZero);
  };
  send(*a1, 5001, 6001, "to-one", 20);
  send(*a2, 5002, 6002, "to-two", 20);
  // a listener-templated A endpoint reaches B's listener from a new port
  utcp_endpoint_template et{};
  et.id = a2->info().id;
  et.tmpl = utcp::make_template(a.mac, IPPROTO_UDP, a.addr, 5002, {}, 0, true);
  xioctl(a.ctl, UTCP_IOC_SET_TEMPLATE, &et);
  send(*a2, 5002, 6100, "to-listener", 10);
  auto g1 = kt::recv_frames(*b1, 1500, 100);
  auto g2 = kt::recv_frames(*b2, 500, 100);
  auto g3 = kt::recv_frames(*b3, 500, 100);
  auto all = [](auto& v, const char* m) {
    return std::all_of(v.begin(), v.end(), [&](auto& f) { return kt::contains(f, m); });
  };
  r.check(g1.size() == 20 && all(g1, "to-one"), "isolation_endpoint_one_only_its_frames", "got %zu", g1.size());
  r.check(g2.size() == 20 && all(g2, "to-two"), "isolation_endpoint_two_only_its_frames", "got %zu", g2.size());
  r.check(g3.size() == 10 && all(g3, "to-listener"), "isolation_listener_gets_new_flow", "got %zu", g3.size());
  // A frame for another MAC (what promiscuous mode shows) is not delivered, flow or not.
  {
    auto f = utcp::frame_for_template(a1->info().tmpl, utcp::MacAddr{{0x02, 0, 0, 0, 0, 0x99}});
    std::string pl = "to-other-host";
    f.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pl.data()), pl.size());
    kt::send_frame(*a1, f);
    auto o1 = kt::recv_frames(*b1, 300, 10);
    r.check(o1.empty(), "isolation_other_host_mac_not_delivered", "got %zu", o1.size());
  }
  // A frame with no flow reaches the kernel (and neither endpoint).
  send(*a2, 5002, 6200, "to-nobody", 5);
  auto n1 = kt::recv_frames(*b1, 300, 100), n2 = kt::recv_frames(*b2, 100, 100), n3 = kt::recv_frames(*b3, 100, 100);
  r.check(n1.empty() && n2.empty() && n3.empty(), "isolation_unmatched_not_delivered", "%zu %zu %zu", n1.size(),
          n2.size(), n3.size());
  // Another control file's endpoints are out of reach: B's classifier naming an id
  // only resolves within its own control file.
  auto g = gstats(b.ctl);
  r.check(g.rx_passed >= 5, "isolation_unmatched_passed_to_kernel", "passed %llu", (unsigned long long)g.rx_passed);
  return r.exit_code();
}

// Kernel sockets still talk across the link while both ends are attached.
int cmd_kernel_peer(const Env& e) {
  Report r;
  std::string err;
  kt::Side a, b;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, true, &err) || !b.setup(e.ns_b, e.if_b, e.ip_b, true, &err))
    return std::printf("FAIL: kernel_peer_setup %s\n", err.c_str()), 1;
  auto eb = b.endpoint(udp_tmpl(b, 6000, a.addr, 5000));
  // b is the current netns: a kernel UDP socket in B
  int sb = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(7000);
  addr.sin_addr.s_addr = htonl(b.addr.v);
  bool bound = ::bind(sb, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  kt::enter_netns(e.ns_a);
  int sa = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const char msg[] = "kernel-peer";
  int got = 0;
  for (int i = 0; i < 5; ++i) {
    ::sendto(sa, msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    pollfd p{sb, POLLIN, 0};
    if (::poll(&p, 1, 1000) == 1) {
      char buf[64];
      if (::recv(sb, buf, sizeof(buf), 0) == ssize_t(sizeof(msg))) ++got;
    }
  }
  r.check(bound && got == 5, "kernel_peer_udp_passes", "bound %d got %d of 5", bound, got);
  // The same 4-tuple as an endpoint's flow goes to the endpoint, not the kernel socket.
  addr.sin_port = htons(6000);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_port = htons(5000);
  src.sin_addr.s_addr = htonl(a.addr.v);
  int sf = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  bool src_bound = ::bind(sf, reinterpret_cast<sockaddr*>(&src), sizeof(src)) == 0;
  ::sendto(sf, msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::close(sf);
  r.check(src_bound, "kernel_peer_bind_flow_source");
  auto frames = eb ? kt::recv_frames(*eb, 2000, 1) : decltype(kt::recv_frames(*eb, 0)){};
  r.check(frames.size() == 1 && kt::contains(frames[0], "kernel-peer") && valid_frame(frames[0]),
          "kernel_peer_flow_to_endpoint", "got %zu", frames.size());
  int rc = std::system(("ip netns exec " + e.ns_a + " ping -c 3 -W 2 -i 0.2 " + e.ip_b + " >/dev/null 2>&1").c_str());
  if (std::system("command -v ping >/dev/null 2>&1") == 0)
    r.check(rc == 0, "kernel_peer_ping", "ping exit %d", rc);
  ::close(sa);
  ::close(sb);
  return r.exit_code();
}

// ---- lifecycle ----

bool wait_counters(int ctl, uint64_t eps, uint64_t bytes, utcp_global_stats* last) {
  for (int i = 0; i < 100; ++i) {
    *last = gstats(ctl);
    if (last->live_endpoints == eps && last->live_ring_bytes == bytes) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int send_fd(int sock, int fd) {
  char dummy = 'x';
  iovec iov{&dummy, 1};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return int(::sendmsg(sock, &msg, 0));
}

int recv_fd(int sock) {
  char dummy;
  iovec iov{&dummy, 1};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  if (::recvmsg(sock, &msg, 0) <= 0) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

int cmd_lifecycle(const Env& e) {
  Report r;
  std::string err;
  kt::Side a;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, false, &err)) return std::printf("FAIL: lifecycle_setup %s\n", err.c_str()), 1;
  utcp_template t = udp_tmpl(a, 5000, kt::ip(e.ip_b), 6000);
  utcp_global_stats base{}, last{};
  wait_counters(a.ctl, gstats(a.ctl).live_endpoints, gstats(a.ctl).live_ring_bytes, &base);

  // 1000 endpoints created and destroyed (half by id, half by closing the fd first).
  int failures = 0;
  for (int i = 0; i < 1000; ++i) {
    utcp::EndpointHandle h;
    if (utcp::ctl_create_endpoint(a.ctl, t, 1, 1, 128, &h) < 0) {
      ++failures;
      continue;
    }
    if (i % 2) {
      // Closing the last fd destroys it: the id is gone at once.
      ::close(h.fd);
      if (utcp::ctl_destroy_endpoint(a.ctl, h.id) != -ENOENT) ++failures;
    } else {
      if (utcp::ctl_destroy_endpoint(a.ctl, h.id) < 0) ++failures;
      ::close(h.fd);
    }
  }
  r.check(failures == 0, "lifecycle_1000_endpoints", "%d failures", failures);
  bool back = wait_counters(a.ctl, base.live_endpoints, base.live_ring_bytes, &last);
  r.check(back, "lifecycle_counters_back_to_start", "live %llu bytes %llu (start %llu %llu)",
          (unsigned long long)last.live_endpoints, (unsigned long long)last.live_ring_bytes,
          (unsigned long long)base.live_endpoints, (unsigned long long)base.live_ring_bytes);

  // An endpoint (mapped) outlives its control file, detached, then is freed.
  {
    int ctl = utcp::open_module(&err);
    utcp::ctl_attach(ctl, int(if_nametoindex(e.if_a.c_str())));  // EBUSY (a has it); not needed
    utcp::EndpointHandle h;
    utcp::ctl_create_endpoint(ctl, t, 64, 64, 2048, &h);
    void* m = ::mmap(nullptr, h.layout.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, h.fd, 0);
    auto mid = gstats(a.ctl);
    r.check(mid.live_endpoints == base.live_endpoints + 1, "lifecycle_live_counted");
    ::close(ctl);
    utcp_endpoint_stats s{};
    ::ioctl(h.fd, UTCP_IOC_EP_STATS, &s);
    r.check(s.flags & UTCP_EPF_DETACHED, "lifecycle_control_close_detaches");
    r.check(xioctl(h.fd, UTCP_IOC_TX, nullptr) == ENOTCONN, "lifecycle_tx_after_control_close");
    ::close(h.fd);  // the mapping still holds it
    static_cast<volatile uint8_t*>(m)[0] = 1;
    r.check(gstats(a.ctl).live_endpoints == base.live_endpoints + 1, "lifecycle_mapping_holds_endpoint");
    ::munmap(m, h.layout.map_size);
    back = wait_counters(a.ctl, base.live_endpoints, base.live_ring_bytes, &last);
    r.check(back, "lifecycle_munmap_frees", "live %llu", (unsigned long long)last.live_endpoints);
  }

  // SCM_RIGHTS to an unprivileged process: the endpoint works there, the control ioctls don't.
  {
    utcp::EndpointHandle h;
    utcp::ctl_create_endpoint(a.ctl, t, 64, 64, 2048, &h);
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(sv[0]);
      int fd = recv_fd(sv[1]);
      // Drop to nobody with no capabilities.
      if (::setgroups(0, nullptr) || ::setgid(65534) || ::setuid(65534)) _exit(10);
      std::string e2;
      auto dev = utcp::KmodDevice::open(fd, 1500, &e2);
      if (!dev) _exit(11);
      auto f = utcp::frame_for_template(dev->info().tmpl, utcp::MacAddr::broadcast());
      if (kt::send_frame(*dev, f) != 1) _exit(12);
      utcp_attach at{};
      at.ifindex = 1;
      if (xioctl(dev->fd(), UTCP_IOC_ATTACH, &at) != ENOTTY) _exit(13);
      utcp_endpoint_template et{};
      if (xioctl(dev->fd(), UTCP_IOC_SET_TEMPLATE, &et) != ENOTTY) _exit(14);
      int ctl = utcp::open_module(&e2);
      if (ctl < 0 || xioctl(ctl, UTCP_IOC_SET_TEMPLATE, &et) != EPERM) _exit(15);
      // A control file inherited from a privileged process is no capability by itself.
      int inherited = recv_fd(sv[1]);
      utcp_global_stats g{};
      if (inherited < 0 || xioctl(inherited, UTCP_IOC_GLOBAL_STATS, &g) != EPERM) _exit(16);
      if (xioctl(inherited, UTCP_IOC_SET_TEMPLATE, &et) != EPERM) _exit(17);
      _exit(0);
    }
    ::close(sv[1]);
    send_fd(sv[0], h.fd);
    ::close(h.fd);
    send_fd(sv[0], a.ctl);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "lifecycle_scm_rights_unprivileged",
            "child status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ::close(sv[0]);
    utcp::ctl_destroy_endpoint(a.ctl, h.id);
    back = wait_counters(a.ctl, base.live_endpoints, base.live_ring_bytes, &last);
    r.check(back, "lifecycle_passed_endpoint_freed");
  }

  // Detach and reattach; the device can go away under an attached control file.
  r.check(xioctl(a.ctl, UTCP_IOC_DETACH, nullptr) == 0, "lifecycle_detach");
  utcp_attach at{};
  at.ifindex = int(if_nametoindex(e.if_a.c_str()));
  r.check(xioctl(a.ctl, UTCP_IOC_ATTACH, &at) == 0, "lifecycle_reattach");
  {
    int rc = std::system(("ip -n " + e.ns_a + " link add utcpdummy0 type veth peer name utcpdummy1").c_str());
    if (rc == 0) {
      int ctl = utcp::open_module(&err);
      at.ifindex = int(if_nametoindex("utcpdummy0"));
      int arc = xioctl(ctl, UTCP_IOC_ATTACH, &at);
      utcp::EndpointHandle h;
      utcp::ctl_create_endpoint(ctl, t, 64, 64, 2048, &h);
      std::system(("ip -n " + e.ns_a + " link del utcpdummy0").c_str());
      r.check(arc == 0 && xioctl(h.fd, UTCP_IOC_TX, nullptr) == ENOTCONN, "lifecycle_netdev_unregister_detaches",
              "attach %s", ename(arc));
      r.check(xioctl(ctl, UTCP_IOC_DETACH, nullptr) == ENOTCONN, "lifecycle_unregistered_is_detached");
      r.check(xioctl(ctl, UTCP_IOC_ATTACH, &at) == ENODEV, "lifecycle_gone_device_enodev");
      ::close(h.fd);
      ::close(ctl);
    }
  }
  return r.exit_code();
}

// ---- ring memory: slot pages exist only where they are used ----

// An endpoint driven through its mapping by the uapi ring protocol directly, so a check
// chooses where in the slot area a TX frame lies and sees where an RX frame landed.
struct RawEp {
  utcp::EndpointHandle h;
  uint8_t* m = nullptr;

  ~RawEp() { close(); }
  void close() {
    if (m) ::munmap(m, h.layout.map_size);
    if (h.fd >= 0) ::close(h.fd);
    m = nullptr;
    h.fd = -1;
  }
  bool open(kt::Side& s, const utcp_template& t, uint32_t rx, uint32_t tx, uint32_t slot) {
    if (utcp::ctl_create_endpoint(s.ctl, t, rx, tx, slot, &h) < 0) return false;
    void* p = ::mmap(nullptr, h.layout.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, h.fd, 0);
    if (p == MAP_FAILED) return false;
    m = static_cast<uint8_t*>(p);
    utcp_flow_key k = utcp::flow_key_for(t);
    return bpf_map_update_elem(s.flow_map, &k, &h.id, BPF_ANY) == 0;
  }
  utcp_ring_header* hdr() const { return reinterpret_cast<utcp_ring_header*>(m + h.layout.header_off); }
  uint32_t tx_slot(uint32_t j) const { return h.layout.slots_off + (h.layout.rx_entries + j) * h.layout.slot_size; }
  uint32_t rx_slot(uint32_t i) const { return h.layout.slots_off + i * h.layout.slot_size; }
  // Waits up to `ms` until at least n received frames are waiting unread.
  bool wait_pending(uint32_t n, int ms) const {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (__atomic_load_n(&hdr()->rx_prod.value, __ATOMIC_ACQUIRE) - hdr()->rx_cons.value < n) {
      if (std::chrono::steady_clock::now() >= end) return false;
      ::usleep(1000);
    }
    return true;
  }
  // Sends the len bytes at `off` of the mapping; returns the descriptor's status (a
  // refused frame too: UTCP_IOC_TX then fails with its errno), or -errno when the module
  // did not complete the descriptor.
  int tx(uint32_t off, uint32_t len) {
    uint32_t prod = hdr()->tx_prod.value;
    auto* d = reinterpret_cast<utcp_desc*>(m + h.layout.tx_desc_off) + (prod & (h.layout.tx_entries - 1));
    d->offset = off;
    d->len = len;
    d->flags = 0;
    d->reserved = 0;
    __atomic_store_n(&hdr()->tx_prod.value, prod + 1, __ATOMIC_RELEASE);
    int rc = ::ioctl(h.fd, UTCP_IOC_TX, nullptr) < 0 ? -errno : 0;
    if (__atomic_load_n(&hdr()->tx_cons.value, __ATOMIC_ACQUIRE) != prod + 1) return rc ? rc : -EPROTO;
    return int(d->flags);
  }
  // The next received frame, copied out of its slot (descriptor in *desc); empty when
  // none arrived within `ms` or the descriptor points outside the slot area.
  std::vector<uint8_t> rx(int ms, utcp_desc* desc) {
    uint32_t cons = hdr()->rx_cons.value;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (__atomic_load_n(&hdr()->rx_prod.value, __ATOMIC_ACQUIRE) == cons) {
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
      pollfd p{h.fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, left) < 0) return {};
    }
    *desc = reinterpret_cast<const utcp_desc*>(m + h.layout.rx_desc_off)[cons & (h.layout.rx_entries - 1)];
    std::vector<uint8_t> out;
    if (desc->offset >= h.layout.slots_off && uint64_t(desc->offset) + desc->len <= h.layout.map_size)
      out.assign(m + desc->offset, m + desc->offset + desc->len);
    __atomic_store_n(&hdr()->rx_cons.value, cons + 1, __ATOMIC_RELEASE);
    return out;
  }
};

// A frame of template `t` to `dst` with `n` payload bytes of a pattern that depends on `seed`.
std::vector<uint8_t> pattern_frame(const utcp_template& t, utcp::MacAddr dst, size_t n, uint32_t seed) {
  std::vector<uint8_t> pl(n), fr(14 + 20 + 20 + n);
  for (size_t i = 0; i < n; ++i) pl[i] = uint8_t(i * 13 + seed * 7 + 1);
  auto f = utcp::frame_for_template(t, dst);
  f.payload = pl;
  f.seq = 1000 + seed;
  fr.resize(utcp::build_frame(f, fr));
  return fr;
}

bool crosses_page(uint64_t off, uint64_t len) {
  const uint64_t pg = uint64_t(::sysconf(_SC_PAGESIZE));
  return len && off / pg != (off + len - 1) / pg;
}

int cmd_rings(const Env& e) {
  Report r;
  std::string err;
  kt::Side a, b;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, true, &err) || !b.setup(e.ns_b, e.if_b, e.ip_b, true, &err))
    return std::printf("FAIL: rings_setup %s\n", err.c_str()), 1;
  const uint64_t pg = uint64_t(::sysconf(_SC_PAGESIZE));
  utcp_global_stats base{}, last{};
  wait_counters(a.ctl, gstats(a.ctl).live_endpoints, gstats(a.ctl).live_ring_bytes, &base);
  auto used = [&] { return (unsigned long long)(gstats(a.ctl).live_ring_bytes - base.live_ring_bytes); };
  {
    // utcpd's default rings: 64 RX and 32 TX slots of 65,792 B.
    utcp_template ta = udp_tmpl(a, 5400, b.addr, 6400), tb = udp_tmpl(b, 6400, a.addr, 5400);
    RawEp ea, eb;
    if (!ea.open(a, ta, 64, 32, 65792) || !eb.open(b, tb, 64, 32, 65792))
      return std::printf("FAIL: rings_default_endpoints %s\n", std::strerror(errno)), 1;
    const utcp_ring_layout& l = ea.h.layout;
    const unsigned long long map = l.map_size, head = l.slots_off;
    // Created with the first page of RX slot 0 and of TX slot 0 (every connection's
    // first frames land there), mapping allocates nothing more.
    r.check(used() == 2 * (head + 2 * pg), "rings_mapping_allocates_no_slot_page",
            "two mapped endpoints of %llu B: live_ring_bytes +%llu (header and descriptors: %llu each, and "
            "two slot pages)", map, used(), head);

    // One small frame each way, as a short request/response would use.
    auto req = pattern_frame(ta, b.mac, 64, 1), resp = pattern_frame(tb, a.mac, 64, 2);
    std::memcpy(ea.m + ea.tx_slot(0), req.data(), req.size());
    int st = ea.tx(ea.tx_slot(0), uint32_t(req.size()));
    utcp_desc d{};
    auto got = eb.rx(3000, &d);
    r.check(st == UTCP_TXF_SENT && got == req, "rings_small_frame_a_to_b", "status %d got %zu B", st, got.size());
    std::memcpy(eb.m + eb.tx_slot(0), resp.data(), resp.size());
    st = eb.tx(eb.tx_slot(0), uint32_t(resp.size()));
    got = ea.rx(3000, &d);
    r.check(st == UTCP_TXF_SENT && got == resp, "rings_small_frame_b_to_a", "status %d got %zu B", st, got.size());
    unsigned long long after = used();
    std::printf("rings: map_size %llu B per endpoint; two endpoints after one %zu B frame each way: "
                "live_ring_bytes +%llu B (old module: +%llu B)\n",
                map, req.size(), after, 2 * map);
    r.check(after < map / 8, "rings_short_exchange_uses_little_memory",
            "+%llu B for two endpoints of %llu B (limit %llu)", after, map, map / 8);

    // A TX descriptor on pages nobody touched: the module reads zeroes (an all-zero
    // frame, refused by the template) and allocates nothing for it.
    const uint32_t untouched = ea.tx_slot(31);
    st = ea.tx(untouched, 1000);
    r.check(st == int(UTCP_TXF_ERR_TEMPLATE) && used() == after, "rings_untouched_tx_reads_zeroes",
            "status %d, live_ring_bytes +%llu (was +%llu)", st, used(), after);
    // ... and the mapping shows a never-touched slot as zeroes.
    bool zero = std::all_of(ea.m + untouched, ea.m + untouched + l.slot_size, [](uint8_t c) { return c == 0; });
    bool zero_rx = std::all_of(ea.m + ea.rx_slot(63), ea.m + ea.rx_slot(63) + l.slot_size,
                               [](uint8_t c) { return c == 0; });
    r.check(zero && zero_rx, "rings_untouched_slot_reads_zero", "tx slot %d rx slot %d", zero, zero_rx);

    // A TX frame written across a page boundary of the slot area arrives whole.
    uint64_t pos = (ea.tx_slot(1) / pg + 1) * pg - 301;
    auto span = pattern_frame(ta, b.mac, 1000, 3);
    std::memcpy(ea.m + pos, span.data(), span.size());
    st = ea.tx(uint32_t(pos), uint32_t(span.size()));
    got = eb.rx(3000, &d);
    r.check(crosses_page(pos, span.size()) && st == UTCP_TXF_SENT && got == span, "rings_tx_frame_across_pages",
            "at %llu len %zu status %d got %zu B equal %d", (unsigned long long)pos, span.size(), st, got.size(),
            got == span);

    // A frame that finds the RX ring drained goes to slot 0 (the reader above took every
    // frame as it came: the last one is there too).
    r.check(d.offset == eb.rx_slot(0), "rings_rx_drained_ring_starts_at_slot_0", "last frame at offset %u, slot 0 at %u",
            d.offset, eb.rx_slot(0));
    // Frames that arrive while earlier ones are unread land in successive slots, which
    // lie at different page offsets (65,792 B slots: 256 B further each): 16 frames
    // before reading any, and frames 11-15 cross a page boundary; every byte of every
    // one must be read back, from the slot its place in the batch says.
    const uint32_t batch = 16;
    std::vector<std::vector<uint8_t>> sent;
    int crossed = 0, intact = 0, sent_ok = 0;
    for (uint32_t k = 0; k < batch; ++k) {
      auto fr = pattern_frame(ta, b.mac, 1400, 10 + k);
      uint32_t at = ea.tx_slot(2 + k % 8);
      std::memcpy(ea.m + at, fr.data(), fr.size());
      sent_ok += ea.tx(at, uint32_t(fr.size())) == UTCP_TXF_SENT;
      sent.push_back(std::move(fr));
    }
    bool all_queued = eb.wait_pending(batch, 3000);
    for (uint32_t k = 0; k < batch; ++k) {
      got = eb.rx(3000, &d);
      if (got == sent[k] && d.offset == eb.rx_slot(k)) ++intact;
      if (crosses_page(d.offset, d.len)) ++crossed;
    }
    r.check(all_queued && sent_ok == int(batch) && crossed >= 4 && intact == int(batch), "rings_rx_frames_across_pages",
            "%d of %u sent, all queued %d, %d intact at their slot, %d crossed a page", sent_ok, batch, all_queued,
            intact, crossed);
    ea.close();
    eb.close();
  }
  {
    // TCP: the module sends CHECKSUM_PARTIAL frames, which veth delivers as such; the RX
    // path sums them while copying into the slot, page by page. Slots of 4032 B put
    // every page boundary at a different place in successive slots.
    utcp_template ta = utcp::make_template(a.mac, IPPROTO_TCP, a.addr, 7400, b.addr, 8400);
    utcp_template tb = utcp::make_template(b.mac, IPPROTO_TCP, b.addr, 8400, a.addr, 7400);
    RawEp ea, eb;
    if (!ea.open(a, ta, 16, 16, 4032) || !eb.open(b, tb, 16, 16, 4032))
      return std::printf("FAIL: rings_tcp_endpoints %s\n", std::strerror(errno)), 1;
    // Eight frames before reading any, so they fill slots 0-7 (a drained ring starts at
    // slot 0), all but the first across a page boundary.
    const uint32_t total = 8;
    std::vector<std::vector<uint8_t>> sent;
    int crossed = 0, valid = 0, sent_ok = 0;
    for (uint32_t i = 0; i < total; ++i) {
      auto fr = pattern_frame(ta, b.mac, 1400, 50 + i);
      uint64_t pos = (ea.tx_slot(i % 8) / pg + 1) * pg - 101 - i;  // across a page, odd and even
      fr[14 + 20 + 16] ^= 0x5a;  // the module completes the TCP checksum (UTCP_ABI_F_TX_TCP_CSUM)
      std::memcpy(ea.m + pos, fr.data(), fr.size());
      sent_ok += ea.tx(uint32_t(pos), uint32_t(fr.size())) == UTCP_TXF_SENT;
      sent.push_back(std::move(fr));
    }
    bool all_queued = eb.wait_pending(total, 3000);
    for (uint32_t i = 0; i < total; ++i) {
      const auto& fr = sent[i];
      utcp_desc d{};
      auto got = eb.rx(3000, &d);
      auto p = utcp::parse_frame(got, true);
      // Every byte as written but the TCP checksum, which must now be valid.
      bool same = p && p->tcp && got.size() == fr.size() && std::equal(fr.begin(), fr.begin() + 50, got.begin()) &&
                  std::equal(fr.begin() + 52, fr.end(), got.begin() + 52);
      if (same && (d.flags & UTCP_RXF_CSUM_OK)) ++valid;
      if (crosses_page(d.offset, d.len)) ++crossed;
    }
    r.check(all_queued && sent_ok == int(total) && crossed >= 4 && valid == int(total), "rings_rx_csum_across_pages",
            "%d of %u sent, all queued %d, %d valid, %d crossed a page", sent_ok, total, all_queued, valid, crossed);
    ea.close();
    eb.close();
  }
  // Endpoints destroyed (last fd closed, mappings gone): every page is freed.
  bool back = wait_counters(a.ctl, base.live_endpoints, base.live_ring_bytes, &last);
  r.check(back, "rings_memory_back_to_base", "live %llu bytes %llu (start %llu %llu)",
          (unsigned long long)last.live_endpoints, (unsigned long long)last.live_ring_bytes,
          (unsigned long long)base.live_endpoints, (unsigned long long)base.live_ring_bytes);
  return r.exit_code();
}

// Not a check: the cost of setting up and tearing down one endpoint with utcpd's default
// rings (create, mmap, munmap, close), for comparing modules. Prints one line.
int cmd_rings_cost(const Env& e, int n) {
  std::string err;
  kt::Side a;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, false, &err)) return std::printf("rings-cost: setup %s\n", err.c_str()), 1;
  utcp_template t = udp_tmpl(a, 5500, kt::ip(e.ip_b), 6500);
  std::vector<double> us;
  uint64_t map = 0;
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    utcp::EndpointHandle h;
    if (utcp::ctl_create_endpoint(a.ctl, t, 64, 32, 65792, &h) < 0) return std::printf("rings-cost: create failed\n"), 1;
    void* m = ::mmap(nullptr, h.layout.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, h.fd, 0);
    if (m == MAP_FAILED) return std::printf("rings-cost: mmap failed\n"), 1;
    ::munmap(m, h.layout.map_size);
    ::close(h.fd);
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    map = h.layout.map_size;
  }
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double v : us) sum += v;
  std::printf("rings-cost: %d endpoints of %llu B: create+mmap+munmap+close median %.0f us, mean %.0f us, "
              "min %.0f us, max %.0f us\n",
              n, (unsigned long long)map, us[us.size() / 2], sum / double(us.size()), us.front(), us.back());
  return 0;
}

// ---- fuzz ----

int cmd_fuzz(const Env& e, int seconds) {
  Report r;
  std::string err;
  kt::Side a, b;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, true, &err) || !b.setup(e.ns_b, e.if_b, e.ip_b, true, &err))
    return std::printf("FAIL: fuzz_setup %s\n", err.c_str()), 1;
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("UTCP_FUZZ_SEED")) seed = std::strtoull(s, nullptr, 0);
  std::printf("fuzz seed %llu, %d s\n", (unsigned long long)seed, seconds);
  std::mt19937_64 rng(seed);
  const unsigned long cmds[] = {UTCP_IOC_ABI_INFO, UTCP_IOC_ATTACH, UTCP_IOC_DETACH, UTCP_IOC_SET_CLASSIFIER,
                                UTCP_IOC_ENDPOINT_CREATE, UTCP_IOC_SET_TEMPLATE, UTCP_IOC_SET_RATE,
                                UTCP_IOC_GLOBAL_STATS, UTCP_IOC_ENDPOINT_STATS, UTCP_IOC_ENDPOINT_DESTROY,
                                UTCP_IOC_TX, UTCP_IOC_EP_STATS, UTCP_IOC_EP_INFO};
  struct Ep {
    utcp::EndpointHandle h;
    uint8_t* map = nullptr;
  };
  std::vector<Ep> eps;
  auto tmpl = udp_tmpl(b, 6000, a.addr, 5000);
  // A sender in A keeps frames flowing to B's flow while B's rings are abused.
  auto ea = a.endpoint(udp_tmpl(a, 5000, b.addr, 6000));
  // The sender lives through the run, and the module backs slot pages on first use: back
  // all of its ring now (a read through a mapping does) so its memory is in the base.
  if (ea) {
    size_t size = ea->info().layout.map_size;
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, ea->fd(), 0);
    if (m != MAP_FAILED) {
      for (size_t off = 0; off < size; off += size_t(::sysconf(_SC_PAGESIZE)))
        (void)static_cast<volatile const uint8_t*>(m)[off];
      ::munmap(m, size);
    }
  }
  utcp_global_stats base = gstats(b.ctl);  // the sender's endpoint included
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  uint64_t ops = 0;
  std::vector<uint8_t> buf(512);
  while (std::chrono::steady_clock::now() < deadline) {
    ++ops;
    switch (rng() % 6) {
      case 0: {  // create an endpoint with random-ish sizes and route the flow to it
        if (eps.size() > 16) break;
        Ep ep;
        uint32_t rx = 1u << (rng() % 8), tx = 1u << (rng() % 8);
        if (utcp::ctl_create_endpoint(b.ctl, tmpl, rx, tx, 128 + 64 * uint32_t(rng() % 40), &ep.h) < 0) break;
        void* m = ::mmap(nullptr, ep.h.layout.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, ep.h.fd, 0);
        ep.map = m == MAP_FAILED ? nullptr : static_cast<uint8_t*>(m);
        utcp_flow_key k = utcp::flow_key_for(tmpl);
        bpf_map_update_elem(b.flow_map, &k, &ep.h.id, BPF_ANY);
        eps.push_back(ep);
        break;
      }
      case 1: {  // destroy / close one, in random order of unmap, destroy, close
        if (eps.empty()) break;
        size_t i = rng() % eps.size();
        Ep ep = eps[i];
        eps.erase(eps.begin() + long(i));
        if (rng() % 2) utcp::ctl_destroy_endpoint(b.ctl, ep.h.id);
        ::close(ep.h.fd);
        if (ep.map) ::munmap(ep.map, ep.h.layout.map_size);
        break;
      }
      case 2: {  // scribble on ring indices and descriptors, then TX
        if (eps.empty()) break;
        Ep& ep = eps[rng() % eps.size()];
        if (!ep.map) break;
        auto* hdr = reinterpret_cast<utcp_ring_header*>(ep.map);
        if (rng() % 2) hdr->rx_cons.value = uint32_t(rng());
        hdr->tx_prod.value = rng() % 3 ? hdr->tx_cons.value + uint32_t(rng() % (ep.h.layout.tx_entries + 2)) : uint32_t(rng());
        auto* tx = reinterpret_cast<utcp_desc*>(ep.map + ep.h.layout.tx_desc_off);
        for (uint32_t j = 0; j < ep.h.layout.tx_entries; ++j) {
          if (rng() % 4) continue;
          tx[j].offset = rng() % 2 ? uint32_t(rng()) : ep.h.layout.slots_off + uint32_t(rng() % 4096);
          tx[j].len = rng() % 2 ? uint32_t(rng()) : uint32_t(rng() % 2000);
          tx[j].flags = rng() % 8 ? 0 : uint32_t(rng());
          tx[j].reserved = 0;
        }
        uint32_t off = ep.h.layout.slots_off + uint32_t(rng() % (ep.h.layout.slot_count)) * ep.h.layout.slot_size;
        for (uint32_t j = 0; j < 64 && off + j < ep.h.layout.map_size; ++j) ep.map[off + j] = uint8_t(rng());
        utcp_tx_result res{};
        ::ioctl(ep.h.fd, UTCP_IOC_TX, rng() % 4 ? &res : nullptr);
        break;
      }
      case 3: {  // random ioctl with a random buffer (sometimes a bad pointer) on a random file
        for (auto& x : buf) x = uint8_t(rng());
        int fd = eps.empty() || rng() % 2 ? b.ctl : eps[rng() % eps.size()].h.fd;
        unsigned long cmd = rng() % 5 ? cmds[rng() % std::size(cmds)] : _IOC(rng() % 4, UTCP_IOC_MAGIC, rng() % 32, rng() % 256);
        // Never let it detach or replace the setup under us, or attach elsewhere.
        if (cmd == UTCP_IOC_DETACH || cmd == UTCP_IOC_SET_CLASSIFIER || cmd == UTCP_IOC_ATTACH) break;
        void* arg = rng() % 10 ? static_cast<void*>(buf.data()) : reinterpret_cast<void*>(rng() % 2 ? 8 : 0);
        if (cmd == UTCP_IOC_ENDPOINT_CREATE && ::ioctl(fd, cmd, arg) == 0) {
          ::close(reinterpret_cast<utcp_endpoint_create*>(buf.data())->fd);
        } else {
          ::ioctl(fd, cmd, arg);
        }
        break;
      }
      case 4: {  // frames from A towards B
        if (!ea) break;
        auto f = utcp::frame_for_template(ea->info().tmpl, b.mac);
        std::vector<uint8_t> fr(64 + rng() % 1400);
        f.payload = std::span<const uint8_t>(buf.data(), std::min<size_t>(fr.size() - 42, buf.size()));
        size_t n = utcp::build_frame(f, fr);
        fr.resize(n);
        for (int j = 0; j < 8; ++j) ea->transmit(fr);
        ea->flush(utcp::kInstantZero);
        break;
      }
      case 5: {  // consume what arrived, poll with zero timeout
        for (auto& ep : eps) {
          pollfd p{ep.h.fd, POLLIN | POLLOUT, 0};
          ::poll(&p, 1, 0);
        }
        break;
      }
    }
  }
  for (auto& ep : eps) {
    if (ep.map) ::munmap(ep.map, ep.h.layout.map_size);
    ::close(ep.h.fd);
    utcp::ctl_destroy_endpoint(b.ctl, ep.h.id);
  }
  std::printf("fuzz ops %llu\n", (unsigned long long)ops);
  utcp_global_stats last{};
  bool back = wait_counters(b.ctl, base.live_endpoints, base.live_ring_bytes, &last);
  r.check(back, "fuzz_no_leak", "live %llu bytes %llu (start %llu %llu)", (unsigned long long)last.live_endpoints,
          (unsigned long long)last.live_ring_bytes, (unsigned long long)base.live_endpoints,
          (unsigned long long)base.live_ring_bytes);
  // The module still works after the abuse.
  auto eb = b.endpoint(tmpl);
  auto f = utcp::frame_for_template(ea->info().tmpl, b.mac);
  bool sent = eb && kt::send_frame(*ea, f) == 1;
  auto got = eb ? kt::recv_frames(*eb, 2000, 1) : std::vector<std::vector<uint8_t>>{};
  r.check(sent && got.size() == 1, "fuzz_still_works", "sent %d got %zu", sent, got.size());
  return r.exit_code();
}

// ---- a control file outliving its process: parked attachment, adopt, reclaim ----

uint32_t ep_flags(int fd) {
  utcp_endpoint_stats st{};
  return ::ioctl(fd, UTCP_IOC_EP_STATS, &st) == 0 ? st.flags : ~0u;
}

int set_persist(int ctl, uint32_t on) {
  utcp_persist p{};
  p.persist = on;
  return xioctl(ctl, UTCP_IOC_SET_PERSIST, &p);
}

int cmd_park(const Env& e) {
  Report r;
  std::string err;
  kt::Side a;
  if (!a.setup(e.ns_a, e.if_a, e.ip_a, true, &err)) return std::printf("FAIL: park_setup %s\n", err.c_str()), 1;
  int ifindex = int(if_nametoindex(e.if_a.c_str()));
  int stats = utcp::open_module(&err);  // a control file of its own, for the counters
  uint64_t parked0 = gstats(stats).parked_controls;
  uint32_t id = 0;
  auto dev = a.endpoint(udp_tmpl(a, 5100, kt::ip(e.ip_b), 6100), &id);
  r.check(dev != nullptr, "park_endpoint_created");
  if (!dev) return 1;
  bpf_prog_info pi{};
  uint32_t pilen = sizeof pi;
  bpf_obj_get_info_by_fd(bpf_program__fd(bpf_object__find_program_by_name(a.bpf, UTCP_CLASSIFIER_PROG)), &pi, &pilen);

  // A persistent control file closes: everything stays, parked.
  expect_errno(r, "park_persist_on", 0, set_persist(a.ctl, 1));
  ::close(a.ctl);
  a.ctl = -1;
  r.check(gstats(stats).parked_controls == parked0 + 1, "park_counted", "parked %llu",
          (unsigned long long)gstats(stats).parked_controls);
  r.check(ep_flags(dev->fd()) == 0, "park_endpoint_stays_attached", "flags 0x%x", ep_flags(dev->fd()));
  expect_errno(r, "park_endpoint_tx_still_works", 0, xioctl(dev->fd(), UTCP_IOC_TX, nullptr));

  // A new control file takes it over, with the classifier and the endpoint.
  int n = utcp::open_module(&err);
  utcp_adopt ad{};
  ad.ifindex = ifindex;
  expect_errno(r, "park_adopt_ok", 0, xioctl(n, UTCP_IOC_ADOPT, &ad));
  r.check(ad.endpoints == 1 && ad.prog_id != 0 && ad.prog_id == pi.id, "park_adopt_reports_endpoints_and_classifier",
          "endpoints %u prog_id %u (want 1, %u)", ad.endpoints, ad.prog_id, pi.id);
  r.check(gstats(stats).parked_controls == parked0, "park_adopted_not_parked_any_more");
  int n2 = utcp::open_module(&err);
  utcp_adopt ad2{};
  ad2.ifindex = ifindex;
  expect_errno(r, "park_adopt_twice", ENOENT, xioctl(n2, UTCP_IOC_ADOPT, &ad2));
  ::close(n2);
  utcp_endpoint_entry ent{};
  utcp_endpoint_list el{};
  el.entries = reinterpret_cast<uint64_t>(&ent);
  el.capacity = 1;
  expect_errno(r, "park_adopter_lists", 0, xioctl(n, UTCP_IOC_ENDPOINT_LIST, &el));
  r.check(el.count == 1 && ent.id == id, "park_adopter_sees_endpoint", "count %u id %u want %u", el.count, ent.id, id);
  utcp_endpoint_stats es{};
  es.id = id;
  expect_errno(r, "park_adopter_owns_endpoint", 0, xioctl(n, UTCP_IOC_ENDPOINT_STATS, &es));
  utcp_attach at{};
  at.ifindex = ifindex;
  expect_errno(r, "park_adopter_is_attached", EISCONN, xioctl(n, UTCP_IOC_ATTACH, &at));

  // The adopter keeps persistence; turned off, closing it ends everything as before.
  expect_errno(r, "park_persist_off", 0, set_persist(n, 0));
  ::close(n);
  r.check(ep_flags(dev->fd()) == UTCP_EPF_DETACHED, "park_not_persistent_close_detaches", "flags 0x%x",
          ep_flags(dev->fd()));
  expect_errno(r, "park_detached_tx", ENOTCONN, xioctl(dev->fd(), UTCP_IOC_TX, nullptr));
  r.check(gstats(stats).parked_controls == parked0, "park_nothing_left_parked");
  n = utcp::open_module(&err);
  expect_errno(r, "park_nothing_to_adopt", ENOENT, xioctl(n, UTCP_IOC_ADOPT, &ad2));
  ::close(n);
  dev.reset();

  // A persistent control file that is not attached parks nothing.
  n = utcp::open_module(&err);
  expect_errno(r, "park_unattached_persist", 0, set_persist(n, 1));
  ::close(n);
  r.check(gstats(stats).parked_controls == parked0, "park_unattached_parks_nothing");

  // Parked state goes with its device: the endpoint is detached, nothing stays parked.
  if (std::system("ip link add utcpk0 type veth peer name utcpk1 && ip link set utcpk0 up && ip link set utcpk1 up") != 0) {
    r.check(false, "park_veth_created");
    return r.exit_code();
  }
  int vidx = int(if_nametoindex("utcpk0"));
  n = utcp::open_module(&err);
  utcp_attach va{};
  va.ifindex = vidx;
  expect_errno(r, "park_veth_attach", 0, xioctl(n, UTCP_IOC_ATTACH, &va));
  utcp::EndpointHandle h;
  int vfd = utcp::ctl_create_endpoint(n, udp_tmpl(a, 5200, kt::ip(e.ip_b), 6200), 4, 4, 2048, &h);
  r.check(vfd >= 0, "park_veth_endpoint");
  expect_errno(r, "park_veth_persist", 0, set_persist(n, 1));
  ::close(n);
  r.check(gstats(stats).parked_controls == parked0 + 1, "park_veth_parked");
  r.check(std::system("ip link del utcpk0") == 0, "park_veth_deleted");
  r.check(gstats(stats).parked_controls == parked0, "park_reclaimed_with_device", "parked %llu",
          (unsigned long long)gstats(stats).parked_controls);
  r.check(vfd >= 0 && ep_flags(vfd) == UTCP_EPF_DETACHED, "park_reclaimed_endpoint_detached");
  n = utcp::open_module(&err);
  va.ifindex = vidx;
  utcp_adopt ad3{};
  ad3.ifindex = vidx;
  expect_errno(r, "park_reclaimed_not_adoptable", ENOENT, xioctl(n, UTCP_IOC_ADOPT, &ad3));
  ::close(n);
  if (vfd >= 0) ::close(vfd);
  ::close(stats);
  return r.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: kmod_check errno|unpriv|template|exchange|isolation|kernel-peer|lifecycle|park|rings|fuzz [SECONDS]\n"
                 "       kmod_check rings-cost [N]  (time to set up and tear down N default-size endpoints)\n"
                 "Runs inside the utcp VM (tools/utcp-vm --net); prints PASS:/FAIL: lines.\n");
    return 2;
  }
  Env e;
  std::string c = argv[1];
  if (c == "errno") return cmd_errno(e);
  if (c == "unpriv") return cmd_unpriv(e);
  if (c == "template") return cmd_template(e);
  if (c == "exchange") return cmd_exchange(e);
  if (c == "isolation") return cmd_isolation(e);
  if (c == "kernel-peer") return cmd_kernel_peer(e);
  if (c == "lifecycle") return cmd_lifecycle(e);
  if (c == "park") return cmd_park(e);
  if (c == "fuzz") return cmd_fuzz(e, argc > 2 ? std::atoi(argv[2]) : 20);
  if (c == "rings") return cmd_rings(e);
  if (c == "rings-cost") return cmd_rings_cost(e, argc > 2 ? std::max(1, std::atoi(argv[2])) : 50);
  std::fprintf(stderr, "kmod_check: unknown check '%s'\n", argv[1]);
  return 2;
}
