// connection_test.cc - RFC behaviour of one connection, driven by crafted segments at explicit times.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "tcp/connection.h"
#include "tcp_test_util.h"

namespace utcp::test {
namespace {

using namespace tcp_flags;
using ms = std::chrono::milliseconds;

constexpr uint16_t kMss = 1460;

class ConnTest : public LeakChecked {
 protected:
  void make() { c = std::make_unique<Connection>(cfg, tuple, kMss); }
  void TearDown() override {
    c.reset();
    LeakChecked::TearDown();
  }

  TcpRepr seg(uint8_t flags, SeqNum seq, SeqNum ack = SeqNum(0), uint16_t win = 65535,
              std::span<const uint8_t> payload = {}) {
    TcpRepr r;
    r.src_port = tuple.remote_port;
    r.dst_port = tuple.local_port;
    r.seq = seq;
    r.ack = ack;
    r.flags = flags;
    r.window = win;
    r.payload = payload;
    return r;
  }
  void in(const TcpRepr& r) { c->process(now, r, out); }
  std::vector<Sent> dispatch() {
    c->dispatch(now, out);
    return out.take();
  }
  std::vector<Sent> in_and_dispatch(const TcpRepr& r) {
    in(r);
    return dispatch();
  }
  void advance(Duration d) { now += d; }
  // Moves time to the connection's next deadline and dispatches.
  std::vector<Sent> run_to_deadline() {
    Instant at = c->poll_at();
    EXPECT_NE(at, kInstantNever);
    if (at > now) now = at;
    return dispatch();
  }

  void establish_active(uint16_t peer_mss = kMss, uint16_t peer_win = 65535) {
    make();
    c->open_active(now, iss);
    auto s = dispatch();
    ASSERT_EQ(s.size(), 1u);
    ASSERT_TRUE(s[0].has(kSyn));
    advance(hs_rtt);
    TcpRepr synack = seg(kSyn | kAck, irs, iss + 1, peer_win);
    synack.options.mss = peer_mss;
    in(synack);
    ASSERT_EQ(c->state(), TcpState::kEstablished);
    s = dispatch();
    ASSERT_EQ(s.size(), 1u);
    ASSERT_EQ(s[0].repr.flags, kAck);
  }
  void establish_passive() {
    make();
    c->open_passive(iss);
    TcpRepr syn = seg(kSyn, irs);
    syn.options.mss = kMss;
    in(syn);
    ASSERT_EQ(c->state(), TcpState::kSynReceived);
    auto s = dispatch();
    ASSERT_EQ(s.size(), 1u);
    ASSERT_EQ(s[0].repr.flags, kSyn | kAck);
    in(seg(kAck, irs + 1, iss + 1));
    ASSERT_EQ(c->state(), TcpState::kEstablished);
  }
  // Peer's next sequence number and our next, after establishment.
  SeqNum peer() const { return irs + 1 + peer_sent; }
  SeqNum ours() const { return iss + 1 + ours_sent; }

  std::vector<uint8_t> read_all() {
    std::vector<uint8_t> got(1 << 20);
    int64_t n = c->recv(got);
    got.resize(n > 0 ? size_t(n) : 0);
    return got;
  }

  // These state tests pin RFC 5681 / RFC 6582 windows: NewReno with standard slow start
  // (CUBIC, HyStart++ and RACK-TLP have their own tests in congestion_test.cc).
  static TcpConfig newreno_config() {
    TcpConfig c;
    c.congestion = "newreno";
    c.hystart = false;
    return c;
  }
  TcpConfig cfg = newreno_config();
  FourTuple tuple{Ipv4Addr::of(10, 0, 0, 1), 5000, Ipv4Addr::of(10, 0, 0, 2), 80};
  Capture out;
  std::unique_ptr<Connection> c;
  Instant now = Instant(Duration(10'000'000));
  SeqNum iss{1000}, irs{50000};
  uint32_t peer_sent = 0, ours_sent = 0;
  Duration hs_rtt{0};  // time between our SYN and the peer's SYN,ACK
};

// ---------------------------------------------------------------- opening

TEST_F(ConnTest, ActiveOpenThreeWayHandshake) {  // RFC 9293 §3.5 figure 6
  make();
  c->open_active(now, iss);
  EXPECT_EQ(c->state(), TcpState::kSynSent);
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kSyn);
  EXPECT_EQ(s[0].seq(), iss);
  ASSERT_TRUE(s[0].repr.options.mss);  // RFC 9293 §3.7.1: MSS option in the SYN
  EXPECT_EQ(*s[0].repr.options.mss, kMss);
  TcpRepr synack = seg(kSyn | kAck, irs, iss + 1);
  synack.options.mss = 1200;
  in(synack);
  EXPECT_EQ(c->state(), TcpState::kEstablished);
  EXPECT_EQ(c->snd_mss(), 1200);
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kAck);
  EXPECT_EQ(s[0].seq(), iss + 1);
  EXPECT_EQ(s[0].ack(), irs + 1);
}

TEST_F(ConnTest, PassiveOpen) {  // RFC 9293 §3.10.7.2
  establish_passive();
  EXPECT_EQ(c->snd_una(), iss + 1);
  EXPECT_EQ(c->rcv_nxt(), irs + 1);
}

TEST_F(ConnTest, MssDefaultsTo536WithoutOption) {  // RFC 9293 §3.7.1
  make();
  c->open_passive(iss);
  in(seg(kSyn, irs));
  EXPECT_EQ(c->snd_mss(), 536);
}

TEST_F(ConnTest, MssClampedToOurMtu) {  // RFC 9293 §3.7.1: min of both
  establish_active(9000);
  EXPECT_EQ(c->snd_mss(), kMss);
}

TEST_F(ConnTest, SimultaneousOpen) {  // RFC 9293 §3.5 figure 7
  make();
  c->open_active(now, iss);
  dispatch();
  TcpRepr syn = seg(kSyn, irs);
  syn.options.mss = kMss;
  in(syn);
  EXPECT_EQ(c->state(), TcpState::kSynReceived);
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kSyn | kAck);
  EXPECT_EQ(s[0].seq(), iss);
  EXPECT_EQ(s[0].ack(), irs + 1);
  in(seg(kSyn | kAck, irs, iss + 1));
  EXPECT_EQ(c->state(), TcpState::kEstablished);
}

TEST_F(ConnTest, SynSentBadAckGetsReset) {  // RFC 9293 §3.10.7.3 first
  make();
  c->open_active(now, iss);
  dispatch();
  in(seg(kSyn | kAck, irs, iss + 7));
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kRst);
  EXPECT_EQ(s[0].seq(), iss + 7);
  EXPECT_EQ(c->state(), TcpState::kSynSent);
}

TEST_F(ConnTest, SynSentRstWithGoodAckRefuses) {  // RFC 9293 §3.10.7.3 second
  make();
  c->open_active(now, iss);
  dispatch();
  in(seg(kRst | kAck, SeqNum(0), iss + 5));  // bad ACK: ignored
  EXPECT_EQ(c->state(), TcpState::kSynSent);
  in(seg(kRst, SeqNum(0)));  // no ACK: ignored
  EXPECT_EQ(c->state(), TcpState::kSynSent);
  in(seg(kRst | kAck, SeqNum(0), iss + 1));
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), ECONNREFUSED);
  EXPECT_TRUE(out.take().empty());
}

TEST_F(ConnTest, ListenAnswersAckWithReset) {  // RFC 9293 §3.10.7.2 second
  make();
  c->open_passive(iss);
  in(seg(kAck, irs, SeqNum(777)));
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kRst);
  EXPECT_EQ(s[0].seq(), SeqNum(777));
  in(seg(kRst, irs));  // first: RST ignored
  EXPECT_TRUE(out.take().empty());
  EXPECT_EQ(c->state(), TcpState::kListen);
}

TEST_F(ConnTest, ClosedAnswersWithReset) {  // RFC 9293 §3.10.7.1
  TcpRepr a = seg(kAck, irs, SeqNum(4242));
  auto r = rst_reply(a);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->flags, kRst);
  EXPECT_EQ(r->seq, SeqNum(4242));
  auto d = pattern(10);
  TcpRepr b = seg(kSyn, irs, SeqNum(0), 100, d);
  r = rst_reply(b);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->flags, kRst | kAck);
  EXPECT_EQ(r->seq, SeqNum(0));
  EXPECT_EQ(r->ack, irs + 11);  // SEG.SEQ + SEG.LEN, SYN counts
  EXPECT_FALSE(rst_reply(seg(kRst, irs)));
}

TEST_F(ConnTest, DuplicateSynInSynReceivedResendsSynAck) {
  make();
  c->open_passive(iss);
  in(seg(kSyn, irs));
  dispatch();
  in(seg(kSyn, irs));
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kSyn | kAck);
  EXPECT_EQ(c->state(), TcpState::kSynReceived);
}

TEST_F(ConnTest, SynReceivedBadAckGetsReset) {  // RFC 9293 §3.10.7.4 fifth, SYN-RECEIVED
  make();
  c->open_passive(iss);
  in(seg(kSyn, irs));
  dispatch();
  in(seg(kAck, irs + 1, iss + 50));
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kRst);
  EXPECT_EQ(s[0].seq(), iss + 50);
  EXPECT_EQ(c->state(), TcpState::kSynReceived);
}

// ---------------------------------------------------------------- transition table

struct Transition {
  const char* name;
  TcpState from;
  std::function<void(ConnTest&)> setup;   // reach `from`
  std::function<void(ConnTest&)> action;  // the event
  TcpState to;
};

class TransitionTest : public ConnTest {
 public:
  void TestBody() override {}
  using ConnTest::c;
  using ConnTest::cfg;
  using ConnTest::dispatch;
  using ConnTest::establish_active;
  using ConnTest::establish_passive;
  using ConnTest::in;
  using ConnTest::irs;
  using ConnTest::iss;
  using ConnTest::make;
  using ConnTest::now;
  using ConnTest::out;
  using ConnTest::seg;
};

// Helpers reaching each state.
void to_syn_sent(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  x.make();
  x.c->open_active(x.now, x.iss);
  x.dispatch();
}
void to_listen(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  x.make();
  x.c->open_passive(x.iss);
}
void to_syn_received(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  to_listen(t);
  x.in(x.seg(kSyn, x.irs));
  x.dispatch();
}
void to_established(ConnTest& t) { static_cast<TransitionTest&>(t).establish_active(); }
void to_fin_wait1(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  to_established(t);
  x.c->shutdown_write();
  x.dispatch();  // FIN at iss+1
}
void to_fin_wait2(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  to_fin_wait1(t);
  x.in(x.seg(kAck, x.irs + 1, x.iss + 2));
}
void to_close_wait(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  to_established(t);
  x.in(x.seg(kFin | kAck, x.irs + 1, x.iss + 1));
  x.dispatch();
}
void to_closing(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  to_fin_wait1(t);
  x.in(x.seg(kFin | kAck, x.irs + 1, x.iss + 1));  // their FIN, ours not yet acked
  x.dispatch();
}
void to_last_ack(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  to_close_wait(t);
  x.c->shutdown_write();
  x.dispatch();
}
void to_time_wait(ConnTest& t) {
  auto& x = static_cast<TransitionTest&>(t);
  to_fin_wait2(t);
  x.in(x.seg(kFin | kAck, x.irs + 1, x.iss + 2));
  x.dispatch();
}

#define X(t) static_cast<TransitionTest&>(t)

const std::vector<Transition>& transitions() {
  static const std::vector<Transition> table = {
      {"CLOSED-open-active", TcpState::kClosed, [](ConnTest& t) { X(t).make(); },
       [](ConnTest& t) { X(t).c->open_active(X(t).now, X(t).iss); }, TcpState::kSynSent},
      {"CLOSED-open-passive", TcpState::kClosed, [](ConnTest& t) { X(t).make(); },
       [](ConnTest& t) { X(t).c->open_passive(X(t).iss); }, TcpState::kListen},
      {"LISTEN-SYN", TcpState::kListen, to_listen,
       [](ConnTest& t) { X(t).in(X(t).seg(kSyn, X(t).irs)); }, TcpState::kSynReceived},
      {"LISTEN-close", TcpState::kListen, to_listen, [](ConnTest& t) { X(t).c->shutdown_write(); },
       TcpState::kClosed},
      {"SYN-SENT-SYNACK", TcpState::kSynSent, to_syn_sent,
       [](ConnTest& t) { X(t).in(X(t).seg(kSyn | kAck, X(t).irs, X(t).iss + 1)); },
       TcpState::kEstablished},
      {"SYN-SENT-SYN", TcpState::kSynSent, to_syn_sent,
       [](ConnTest& t) { X(t).in(X(t).seg(kSyn, X(t).irs)); }, TcpState::kSynReceived},
      {"SYN-SENT-RST", TcpState::kSynSent, to_syn_sent,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst | kAck, SeqNum(0), X(t).iss + 1)); },
       TcpState::kClosed},
      {"SYN-SENT-close", TcpState::kSynSent, to_syn_sent,
       [](ConnTest& t) { X(t).c->shutdown_write(); }, TcpState::kClosed},
      {"SYN-RECEIVED-ACK", TcpState::kSynReceived, to_syn_received,
       [](ConnTest& t) { X(t).in(X(t).seg(kAck, X(t).irs + 1, X(t).iss + 1)); },
       TcpState::kEstablished},
      {"SYN-RECEIVED-RST(passive)", TcpState::kSynReceived, to_syn_received,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 1)); }, TcpState::kListen},
      {"SYN-RECEIVED-close-ACK", TcpState::kSynReceived, to_syn_received,
       [](ConnTest& t) {
         X(t).c->shutdown_write();
         X(t).in(X(t).seg(kAck, X(t).irs + 1, X(t).iss + 1));
       },
       TcpState::kFinWait1},
      {"ESTABLISHED-close", TcpState::kEstablished, to_established,
       [](ConnTest& t) { X(t).c->shutdown_write(); }, TcpState::kFinWait1},
      {"ESTABLISHED-FIN", TcpState::kEstablished, to_established,
       [](ConnTest& t) { X(t).in(X(t).seg(kFin | kAck, X(t).irs + 1, X(t).iss + 1)); },
       TcpState::kCloseWait},
      {"ESTABLISHED-RST", TcpState::kEstablished, to_established,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 1)); }, TcpState::kClosed},
      {"ESTABLISHED-abort", TcpState::kEstablished, to_established,
       [](ConnTest& t) { X(t).c->abort(X(t).out); }, TcpState::kClosed},
      {"FIN-WAIT-1-ACK", TcpState::kFinWait1, to_fin_wait1,
       [](ConnTest& t) { X(t).in(X(t).seg(kAck, X(t).irs + 1, X(t).iss + 2)); },
       TcpState::kFinWait2},
      {"FIN-WAIT-1-FIN", TcpState::kFinWait1, to_fin_wait1,
       [](ConnTest& t) { X(t).in(X(t).seg(kFin | kAck, X(t).irs + 1, X(t).iss + 1)); },
       TcpState::kClosing},
      {"FIN-WAIT-1-FINACK", TcpState::kFinWait1, to_fin_wait1,
       [](ConnTest& t) { X(t).in(X(t).seg(kFin | kAck, X(t).irs + 1, X(t).iss + 2)); },
       TcpState::kTimeWait},
      {"FIN-WAIT-1-RST", TcpState::kFinWait1, to_fin_wait1,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 1)); }, TcpState::kClosed},
      {"FIN-WAIT-2-FIN", TcpState::kFinWait2, to_fin_wait2,
       [](ConnTest& t) { X(t).in(X(t).seg(kFin | kAck, X(t).irs + 1, X(t).iss + 2)); },
       TcpState::kTimeWait},
      {"FIN-WAIT-2-RST", TcpState::kFinWait2, to_fin_wait2,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 1)); }, TcpState::kClosed},
      {"CLOSE-WAIT-close", TcpState::kCloseWait, to_close_wait,
       [](ConnTest& t) { X(t).c->shutdown_write(); }, TcpState::kLastAck},
      {"CLOSE-WAIT-RST", TcpState::kCloseWait, to_close_wait,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 2)); }, TcpState::kClosed},
      {"CLOSING-ACK", TcpState::kClosing, to_closing,
       [](ConnTest& t) { X(t).in(X(t).seg(kAck, X(t).irs + 2, X(t).iss + 2)); },
       TcpState::kTimeWait},
      {"CLOSING-RST", TcpState::kClosing, to_closing,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 2)); }, TcpState::kClosed},
      {"LAST-ACK-ACK", TcpState::kLastAck, to_last_ack,
       [](ConnTest& t) { X(t).in(X(t).seg(kAck, X(t).irs + 2, X(t).iss + 2)); }, TcpState::kClosed},
      {"LAST-ACK-RST", TcpState::kLastAck, to_last_ack,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 2)); }, TcpState::kClosed},
      {"TIME-WAIT-2MSL", TcpState::kTimeWait, to_time_wait,
       [](ConnTest& t) {
         X(t).now += 2 * X(t).cfg.msl;
         X(t).dispatch();
       },
       TcpState::kClosed},
      {"TIME-WAIT-RST", TcpState::kTimeWait, to_time_wait,
       [](ConnTest& t) { X(t).in(X(t).seg(kRst, X(t).irs + 2)); }, TcpState::kClosed},
  };
  return table;
}

TEST(TransitionTable, EveryTransition) {  // RFC 9293 §3.3.2 figure 5
  int states_seen[11] = {};
  for (const auto& tr : transitions()) {
    SCOPED_TRACE(tr.name);
    TransitionTest t;
    tr.setup(t);
    ASSERT_TRUE(t.c);
    ASSERT_EQ(t.c->state(), tr.from) << to_string(t.c->state());
    tr.action(t);
    EXPECT_EQ(t.c->state(), tr.to) << "got " << to_string(t.c->state());
    states_seen[int(tr.from)]++;
    t.c.reset();
  }
  for (int s = 0; s < 11; ++s) EXPECT_GT(states_seen[s], 0) << to_string(TcpState(s));
  EXPECT_EQ(live_count(LiveKind::kConnection), 0);
}

// ---------------------------------------------------------------- closing

TEST_F(ConnTest, ActiveCloseFullSequence) {  // RFC 9293 §3.6 figure 12 (normal close)
  establish_active();
  c->shutdown_write();
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kFin | kAck);
  EXPECT_EQ(s[0].seq(), iss + 1);
  in(seg(kAck, irs + 1, iss + 2));
  EXPECT_EQ(c->state(), TcpState::kFinWait2);
  in(seg(kFin | kAck, irs + 1, iss + 2));
  EXPECT_EQ(c->state(), TcpState::kTimeWait);
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 2);
  EXPECT_EQ(c->timewait_deadline(), now + 2 * cfg.msl);
}

TEST_F(ConnTest, SimultaneousClose) {  // RFC 9293 §3.6 figure 13
  establish_active();
  c->shutdown_write();
  dispatch();
  in(seg(kFin | kAck, irs + 1, iss + 1));  // their FIN crosses ours
  EXPECT_EQ(c->state(), TcpState::kClosing);
  auto s = dispatch();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.back().ack(), irs + 2);
  in(seg(kAck, irs + 2, iss + 2));
  EXPECT_EQ(c->state(), TcpState::kTimeWait);
}

TEST_F(ConnTest, TimeWaitLastsTwoMslAndRestartsOnFin) {  // RFC 9293 §3.4.2, §3.10.7.4 eighth
  cfg.msl = Duration(5'000'000);
  establish_active();
  c->shutdown_write();
  dispatch();
  in(seg(kFin | kAck, irs + 1, iss + 2));
  ASSERT_EQ(c->state(), TcpState::kTimeWait);
  dispatch();
  advance(Duration(9'000'000));
  // The peer lost our ACK and retransmits its FIN: ACK again, restart 2 MSL.
  in(seg(kFin | kAck, irs + 1, iss + 2));
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 2);
  EXPECT_EQ(c->timewait_deadline(), now + Duration(10'000'000));
  advance(Duration(9'999'999));
  dispatch();
  EXPECT_EQ(c->state(), TcpState::kTimeWait);
  advance(Duration(1));
  dispatch();
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), 0);
}

TEST_F(ConnTest, HalfCloseKeepsReceiving) {  // RFC 9293 §3.6: CLOSE means "I have no more to send"
  establish_active();
  c->shutdown_write();
  dispatch();
  in(seg(kAck, irs + 1, iss + 2));
  ASSERT_EQ(c->state(), TcpState::kFinWait2);
  EXPECT_EQ(c->send(pattern(10)), -EPIPE);
  auto d = pattern(1000);
  in(seg(kAck, irs + 1, iss + 2, 65535, d));
  EXPECT_EQ(read_all(), d);
  in(seg(kFin | kAck, irs + 1001, iss + 2));
  EXPECT_EQ(c->state(), TcpState::kTimeWait);
  std::vector<uint8_t> buf(10);
  EXPECT_EQ(c->recv(buf), 0);  // end of stream
}

TEST_F(ConnTest, PassiveCloseAfterPeerFin) {  // RFC 9293 §3.6: CLOSE-WAIT -> LAST-ACK -> CLOSED
  establish_active();
  auto d = pattern(100);
  in(seg(kFin | kAck, irs + 1, iss + 1, 65535, d));
  EXPECT_EQ(c->state(), TcpState::kCloseWait);
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 102);  // data + FIN, acknowledged at once
  EXPECT_EQ(read_all(), d);
  ASSERT_EQ(c->send(pattern(50)), 50);  // CLOSE-WAIT may still send
  c->shutdown_write();
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kAck | kFin);
  EXPECT_EQ(s[0].data.size(), 50u);
  in(seg(kAck, irs + 102, iss + 52));
  EXPECT_EQ(c->state(), TcpState::kClosed);
}

TEST_F(ConnTest, AbortSendsResetAtSndNxt) {  // RFC 9293 §3.10.5 ABORT
  establish_active();
  c->send(pattern(100));
  dispatch();
  c->abort(out);
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kRst);
  EXPECT_EQ(s[0].seq(), iss + 101);
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->send_queued(), 0u);
}

// ---------------------------------------------------------------- RFC 5961

TEST_F(ConnTest, RstExactMatchResets) {  // RFC 5961 §3.2
  establish_active();
  in(seg(kRst, irs + 1));
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), ECONNRESET);
  std::vector<uint8_t> b(4);
  EXPECT_EQ(c->recv(b), -ECONNRESET);
  EXPECT_EQ(c->send(b), -ECONNRESET);
}

TEST_F(ConnTest, RstInWindowGetsChallengeAck) {  // RFC 5961 §3.2
  establish_active();
  in(seg(kRst, irs + 100));
  EXPECT_EQ(c->state(), TcpState::kEstablished);
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kAck);
  EXPECT_EQ(s[0].seq(), iss + 1);
  EXPECT_EQ(s[0].ack(), irs + 1);
}

TEST_F(ConnTest, RstOutOfWindowIgnored) {  // RFC 5961 §3.2 / RFC 9293 §3.10.7.4 first
  establish_active();
  in(seg(kRst, irs + 1 + 10'000'000));
  in(seg(kRst, irs - 5));
  EXPECT_EQ(c->state(), TcpState::kEstablished);
  EXPECT_TRUE(out.take().empty());
}

TEST_F(ConnTest, SynInEstablishedGetsChallengeAck) {  // RFC 5961 §4.2
  establish_active();
  in(seg(kSyn, irs + 5));   // in window
  in(seg(kSyn, irs - 500));  // out of window
  EXPECT_EQ(c->state(), TcpState::kEstablished);
  auto s = out.take();
  ASSERT_EQ(s.size(), 2u);
  for (auto& x : s) {
    EXPECT_EQ(x.repr.flags, kAck);
    EXPECT_EQ(x.ack(), irs + 1);
  }
}

TEST_F(ConnTest, AckBeyondSndNxtGetsChallengeAndDropsData) {  // RFC 5961 §5.2
  establish_active();
  auto d = pattern(10);
  in(seg(kAck, irs + 1, iss + 5000, 65535, d));
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 1);  // data not taken
  EXPECT_EQ(c->recv_queued(), 0u);
  // An ACK too far in the past (before SND.UNA - MAX.SND.WND) is treated the same.
  in(seg(kAck, irs + 1, iss - 200'000, 65535, d));
  EXPECT_EQ(out.take().size(), 1u);
  EXPECT_EQ(c->recv_queued(), 0u);
}

TEST_F(ConnTest, ChallengeAckRateLimit) {  // RFC 5961 §7
  cfg.challenge_ack_limit = 10;
  establish_active();
  for (int i = 0; i < 50; ++i) in(seg(kRst, irs + 100 + i));
  EXPECT_EQ(out.take().size(), 10u);
  advance(Duration(1'000'000));
  for (int i = 0; i < 5; ++i) in(seg(kRst, irs + 100 + i));
  EXPECT_EQ(out.take().size(), 5u);
  EXPECT_EQ(c->state(), TcpState::kEstablished);
}

TEST_F(ConnTest, UnacceptableSegmentGetsAck) {  // RFC 9293 §3.10.7.4 first
  establish_active();
  auto d = pattern(100);
  in(seg(kAck, irs - 1000, iss + 1, 65535, d));  // entirely old
  auto s = out.take();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 1);
  EXPECT_EQ(c->recv_queued(), 0u);
}

// ---------------------------------------------------------------- data and ACK policy

TEST_F(ConnTest, DelayedAckTimer) {  // RFC 9293 §3.8.6.3, RFC 5681 §4.2
  cfg.delayed_ack = Duration(40'000);
  establish_active();
  auto d = pattern(500);
  in(seg(kAck | kPsh, irs + 1, iss + 1, 65535, d));
  EXPECT_TRUE(dispatch().empty());
  EXPECT_EQ(c->poll_at(), now + Duration(40'000));
  advance(Duration(39'999));
  EXPECT_TRUE(dispatch().empty());
  advance(Duration(1));
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 501);
}

TEST_F(ConnTest, AckEverySecondFullSegment) {  // RFC 5681 §4.2
  establish_active();
  auto d = pattern(kMss);
  in(seg(kAck, irs + 1, iss + 1, 65535, d));
  EXPECT_TRUE(dispatch().empty());
  in(seg(kAck, irs + 1 + kMss, iss + 1, 65535, d));
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 1 + 2 * kMss);
}

TEST_F(ConnTest, AckEverySecondSegmentOfASmallMssSender) {  // RFC 5681 §4.2 (sender's SMSS)
  establish_active();
  auto d = pattern(536);
  in(seg(kAck, irs + 1, iss + 1, 65535, d));
  EXPECT_TRUE(dispatch().empty());
  in(seg(kAck, irs + 1 + 536, iss + 1, 65535, d));
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 1 + 2 * 536);
}

TEST_F(ConnTest, OutOfOrderAckedAtOnceAndReassembled) {  // RFC 5681 §4.2, RFC 9293 §3.10.7.4 seventh
  establish_active();
  auto d = pattern(3000);
  std::span<const uint8_t> all(d);
  in(seg(kAck, irs + 1 + 2000, iss + 1, 65535, all.subspan(2000)));
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);  // duplicate ACK, immediately
  EXPECT_EQ(s[0].ack(), irs + 1);
  in(seg(kAck, irs + 1 + 1000, iss + 1, 65535, all.subspan(1000, 1000)));
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 1);
  EXPECT_EQ(c->recv_queued(), 0u);
  in(seg(kAck, irs + 1, iss + 1, 65535, all.first(1000)));  // fills the hole
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ack(), irs + 3001);
  EXPECT_EQ(read_all(), d);
}

TEST_F(ConnTest, OverlappingRetransmissionsTrimmed) {  // RFC 9293 §3.10.7.4: only new parts are used
  establish_active();
  auto d = pattern(2000);
  std::span<const uint8_t> all(d);
  in(seg(kAck, irs + 1, iss + 1, 65535, all.first(1200)));
  in(seg(kAck, irs + 1 + 800, iss + 1, 65535, all.subspan(800, 1200)));
  EXPECT_EQ(c->rcv_nxt(), irs + 2001);
  EXPECT_EQ(read_all(), d);
}

TEST_F(ConnTest, FinBehindHoleWaits) {
  establish_active();
  auto d = pattern(200);
  std::span<const uint8_t> all(d);
  in(seg(kAck | kFin, irs + 101, iss + 1, 65535, all.subspan(100)));
  EXPECT_EQ(c->state(), TcpState::kEstablished);
  in(seg(kAck, irs + 1, iss + 1, 65535, all.first(100)));
  EXPECT_EQ(c->state(), TcpState::kCloseWait);
  EXPECT_EQ(c->rcv_nxt(), irs + 202);
  EXPECT_EQ(read_all(), d);
}

TEST_F(ConnTest, NagleHoldsSmallSegments) {  // RFC 9293 §3.7.4
  establish_active();
  auto d = pattern(10);
  c->send(d);
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);  // nothing outstanding: goes at once
  c->send(d);
  c->send(d);
  EXPECT_TRUE(dispatch().empty());  // held while the first is unacknowledged
  in(seg(kAck, irs + 1, iss + 11));
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].data.size(), 20u);  // coalesced
}

TEST_F(ConnTest, NodelaySendsAtOnce) {  // RFC 9293 §3.7.4: the application may disable Nagle
  establish_active();
  c->set_nodelay(true);
  auto d = pattern(10);
  c->send(d);
  EXPECT_EQ(dispatch().size(), 1u);
  c->send(d);
  EXPECT_EQ(dispatch().size(), 1u);
}

TEST_F(ConnTest, SegmentsAreMssSizedAndWindowLimited) {  // RFC 9293 §3.8.6, RFC 5681 §3.1 (IW)
  establish_active(kMss, 4000);
  auto d = pattern(20000);
  ASSERT_EQ(c->send(d), 20000);
  auto s = dispatch();
  // min(peer window 4000, IW = 4380 for MSS 1460) allows 1460 + 1460 + 1080, but the
  // 1080-byte piece waits for an ACK (RFC 9293 §3.8.6.2.1 sender SWS avoidance).
  size_t total = 0;
  for (auto& x : s) {
    EXPECT_EQ(x.data.size(), size_t(kMss));
    total += x.data.size();
  }
  EXPECT_EQ(total, 2u * kMss);
  in(seg(kAck, irs + 1, iss + 1 + 2 * kMss, 4000));
  s = dispatch();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].data.size(), size_t(kMss));
}

TEST_F(ConnTest, ZeroWindowProbeWithBackoff) {  // RFC 9293 §3.8.6.1
  establish_active(kMss, 0);
  auto d = pattern(100);
  c->send(d);
  EXPECT_TRUE(dispatch().empty());
  Instant first = c->persist_deadline();
  ASSERT_NE(first, kInstantNever);
  EXPECT_EQ(first, now + c->rto());
  now = first;
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].data.size(), 1u);  // one octet of new data
  EXPECT_EQ(s[0].seq(), iss + 1);
  Duration gap1 = c->persist_deadline() - now;
  in(seg(kAck, irs + 1, iss + 1, 0));  // still zero: probe not taken
  now = c->persist_deadline();
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(c->persist_deadline() - now, 2 * gap1);  // backoff
  // The window opens: the probe byte and the rest go.
  in(seg(kAck, irs + 1, iss + 2, 65535));
  EXPECT_EQ(c->persist_deadline(), kInstantNever);
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].seq(), iss + 2);
  EXPECT_EQ(s[0].data.size(), 99u);
}

TEST_F(ConnTest, ZeroWindowSilentPeerGivesUp) {  // RFC 9293 §3.8.6.1 (found by fuzz_tcp)
  // Everything sent is acknowledged with a zero window, then the peer falls silent: the
  // probes go unanswered, so after as many probes as retransmissions allowed the
  // connection is reset instead of probing forever.
  establish_active(kMss, 0);
  c->send(pattern(100));
  EXPECT_TRUE(dispatch().empty());
  size_t probes = 0;
  for (int i = 0; i < 200 && c->state() != TcpState::kClosed; ++i) probes += run_to_deadline().size();
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), ETIMEDOUT);
  EXPECT_GE(probes, size_t(cfg.max_retransmits));
}

TEST_F(ConnTest, ZeroWindowAnsweredProbesGoOn) {  // RFC 9293 §3.8.6.1
  // A peer that answers every probe (window still zero) keeps the connection probing.
  establish_active(kMss, 0);
  c->send(pattern(100));
  EXPECT_TRUE(dispatch().empty());
  for (uint32_t i = 0; i < 3 * cfg.max_retransmits; ++i) {
    auto s = run_to_deadline();
    ASSERT_FALSE(s.empty());
    in(seg(kAck, irs + 1, iss + 1, 0));
  }
  EXPECT_NE(c->state(), TcpState::kClosed);
}

TEST_F(ConnTest, WindowClosesWithDataInFlight) {  // RFC 9293 §3.8.6.1
  establish_active();
  c->set_nodelay(true);
  c->send(pattern(3 * kMss));
  ASSERT_EQ(dispatch().size(), 3u);
  // The peer takes the first segment and closes its window: the rest is outside it.
  in(seg(kAck, irs + 1, iss + 1 + kMss, 0));
  EXPECT_TRUE(dispatch().empty());
  auto s = run_to_deadline();  // the RTO fires, but the window lets nothing out
  EXPECT_TRUE(s.empty());
  ASSERT_NE(c->persist_deadline(), kInstantNever);  // so the persist timer takes over
  s = run_to_deadline();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].seq(), iss + 1 + kMss);
  EXPECT_EQ(s[0].data.size(), 1u);
  // The window reopens: sending resumes from SND.UNA, one segment as the timeout left
  // cwnd at the loss window (RFC 5681 §3.1).
  in(seg(kAck, irs + 1, iss + 1 + kMss, 65535));
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].seq(), iss + 1 + kMss);
  EXPECT_EQ(s[0].data.size(), size_t(kMss));
  EXPECT_EQ(c->cwnd(), uint32_t(kMss));
}

TEST_F(ConnTest, ZeroWindowReceiverAcksProbe) {  // RFC 9293 §3.8.6.1 receiver side
  cfg.rcvbuf = 1000;
  establish_active();
  auto d = pattern(1000);
  in(seg(kAck, irs + 1, iss + 1, 65535, d));
  auto s = dispatch();  // window now 0 (delayed ACK or not, we check the probe reply)
  auto p = pattern(1);
  in(seg(kAck, irs + 1001, iss + 1, 65535, p));
  s = dispatch();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.back().ack(), irs + 1001);
  EXPECT_EQ(s.back().repr.window, 0);
  EXPECT_EQ(read_all(), d);
  s = dispatch();  // reading opened the window: update
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.window, 1000);
}

TEST_F(ConnTest, KeepaliveTimesOut) {  // RFC 9293 §3.8.4
  establish_active();
  c->set_keepalive(now, true, Duration(10'000'000), Duration(1'000'000), 3);
  Instant start = now;
  EXPECT_EQ(c->poll_at(), start + Duration(10'000'000));
  for (int i = 0; i < 3; ++i) {
    auto s = run_to_deadline();
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].seq(), iss);  // SND.NXT - 1, no data
    EXPECT_TRUE(s[0].data.empty());
    EXPECT_EQ(now, start + Duration(10'000'000 + i * 1'000'000));
  }
  auto s = run_to_deadline();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kRst);
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), ETIMEDOUT);
}

TEST_F(ConnTest, KeepaliveAnsweredKeepsConnection) {  // RFC 9293 §3.8.4
  establish_active();
  c->set_keepalive(now, true, Duration(10'000'000), Duration(1'000'000), 2);
  for (int i = 0; i < 5; ++i) {
    auto s = run_to_deadline();
    ASSERT_EQ(s.size(), 1u);
    in(seg(kAck, irs + 1, iss + 1));  // the peer answers
  }
  EXPECT_EQ(c->state(), TcpState::kEstablished);
}

// ---------------------------------------------------------------- retransmission

TEST_F(ConnTest, RetransmissionBackoffAndGiveUp) {  // RFC 6298 §5.4-5.6, RFC 9293 §3.8.3
  cfg.max_retransmits = 4;
  establish_active();
  c->send(pattern(100));
  auto s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  Instant sent = now;
  EXPECT_EQ(c->rto_deadline(), sent + c->rto());
  Duration expect_gap = c->rto();
  for (int i = 0; i < 4; ++i) {
    Instant before = now;
    s = run_to_deadline();
    EXPECT_EQ(now - before, expect_gap) << "retransmission " << i;
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].seq(), iss + 1);
    EXPECT_EQ(s[0].data.size(), 100u);
    expect_gap *= 2;
  }
  s = run_to_deadline();
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), ETIMEDOUT);
}

TEST_F(ConnTest, RtoBackoffCappedAtMaximum) {  // RFC 6298 §5.5 / §2.5: a maximum may be placed
  cfg.rto_max = Duration(2'000'000);
  cfg.max_retransmits = 8;
  establish_active();
  c->send(pattern(10));
  dispatch();
  Duration last{0};
  for (int i = 0; i < 7; ++i) {
    Instant before = now;
    ASSERT_EQ(run_to_deadline().size(), 1u);
    last = now - before;
    EXPECT_LE(last, cfg.rto_max);
  }
  EXPECT_EQ(last, cfg.rto_max);
}

TEST_F(ConnTest, SynTimeoutLeavesThreeSecondRto) {  // RFC 6298 §5.7
  make();
  c->open_active(now, iss);
  dispatch();
  run_to_deadline();  // SYN retransmitted after 1 s
  advance(Duration(10'000));
  in(seg(kSyn | kAck, irs, iss + 1));
  ASSERT_EQ(c->state(), TcpState::kEstablished);
  EXPECT_EQ(c->srtt(), Duration(0));  // Karn: no sample from the retransmitted SYN
  EXPECT_GE(c->rto(), Duration(3'000'000));
}

TEST_F(ConnTest, SynRetransmissionAndTimeout) {  // RFC 6298 §5, RFC 9293 §3.8.3 (R2 for SYN)
  cfg.max_syn_retransmits = 2;
  make();
  c->open_active(now, iss);
  dispatch();
  auto s = run_to_deadline();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].repr.flags, kSyn);
  s = run_to_deadline();
  ASSERT_EQ(s.size(), 1u);
  run_to_deadline();
  EXPECT_EQ(c->state(), TcpState::kClosed);
  EXPECT_EQ(c->error(), ETIMEDOUT);
}

TEST_F(ConnTest, RttEstimatorSamples) {  // RFC 6298 §2.2, §2.3, §2.4
  hs_rtt = Duration(100'000);
  establish_active();  // the SYN gives the first sample
  EXPECT_EQ(c->srtt(), Duration(100'000));
  EXPECT_EQ(c->rttvar(), Duration(50'000));
  EXPECT_EQ(c->rto(), Duration(300'000));  // SRTT + 4*RTTVAR
  c->send(pattern(100));
  dispatch();
  advance(Duration(200'000));
  in(seg(kAck, irs + 1, iss + 101));
  EXPECT_EQ(c->rttvar(), Duration(62'500));  // 3/4 * 50 + 1/4 * |100 - 200|
  EXPECT_EQ(c->srtt(), Duration(112'500));   // 7/8 * 100 + 1/8 * 200
  EXPECT_EQ(c->rto(), Duration(362'500));
}

TEST_F(ConnTest, RtoNotBelowMinimum) {  // RFC 6298 §2.4 (Linux's 200 ms floor, configurable)
  establish_active();
  c->send(pattern(100));
  dispatch();
  advance(Duration(1'000));
  in(seg(kAck, irs + 1, iss + 101));
  EXPECT_EQ(c->rto(), cfg.rto_min);
}

TEST_F(ConnTest, KarnNoSampleFromRetransmission) {  // RFC 6298 §3 (Karn's algorithm)
  establish_active();
  // The handshake gave a sample of 0; note SRTT, then time a retransmitted segment.
  Duration srtt_before = c->srtt();
  c->send(pattern(100));
  dispatch();
  run_to_deadline();  // retransmitted after 1 s... (RTO from the handshake sample)
  Duration rto_backed_off = c->rto();
  advance(Duration(50'000));
  in(seg(kAck, irs + 1, iss + 101));
  EXPECT_EQ(c->srtt(), srtt_before);     // the ambiguous ACK gave no sample
  EXPECT_EQ(c->rto(), rto_backed_off);   // RFC 6298 §5.7: backed-off RTO kept until a sample
}

TEST_F(ConnTest, FastRetransmitOnThirdDupack) {  // RFC 5681 §3.2
  establish_active();
  c->set_nodelay(true);
  auto d = pattern(4 * kMss);
  c->send(d);
  auto s = dispatch();
  ASSERT_EQ(s.size(), 3u);  // IW = 3 * 1460 = 4380
  uint32_t flight = 3 * kMss;
  for (int i = 0; i < 2; ++i) in(seg(kAck, irs + 1, iss + 1));
  // RFC 3042 limited transmit: the two duplicates let the fourth segment out, beyond cwnd.
  s = dispatch();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].seq(), iss + 1 + 3 * kMss);
  EXPECT_EQ(c->cwnd(), 3u * kMss);  // cwnd itself unchanged
  EXPECT_FALSE(c->in_recovery());
  in(seg(kAck, irs + 1, iss + 1));
  EXPECT_TRUE(c->in_recovery());
  EXPECT_EQ(c->ssthresh(), std::max(flight / 2, 2u * kMss));
  EXPECT_EQ(c->cwnd(), c->ssthresh() + 3 * kMss);
  s = dispatch();
  ASSERT_GE(s.size(), 1u);
  EXPECT_EQ(s[0].seq(), iss + 1);  // the first unacknowledged segment, resent
  EXPECT_EQ(s[0].data.size(), size_t(kMss));
  EXPECT_EQ(c->stats().fast_retransmits, 1u);
}

TEST_F(ConnTest, NewRenoPartialAndFullAck) {  // RFC 6582 §3.2 steps 4-6
  establish_active();
  c->set_nodelay(true);
  // Grow cwnd first: ack the initial window.
  auto d = pattern(20 * kMss);
  c->send(d);
  dispatch();
  in(seg(kAck, irs + 1, iss + 1 + 3 * kMss));
  auto s = dispatch();  // slow start: cwnd 4 MSS, segments 3..6 out
  SeqNum high = c->snd_max();
  ASSERT_EQ(high, iss + 1 + 7 * kMss);
  // Segments 3 and 5 lost: dupacks for 3.
  SeqNum una = iss + 1 + 3 * kMss;
  for (int i = 0; i < 3; ++i) in(seg(kAck, irs + 1, una));
  ASSERT_TRUE(c->in_recovery());
  s = dispatch();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0].seq(), una);
  uint32_t cwnd_in = c->cwnd();
  in(seg(kAck, irs + 1, una));  // fourth dupack inflates
  EXPECT_EQ(c->cwnd(), cwnd_in + kMss);
  dispatch();
  // Partial ACK up to segment 5: retransmit it at once, stay in recovery.
  SeqNum partial = iss + 1 + 5 * kMss;
  in(seg(kAck, irs + 1, partial));
  EXPECT_TRUE(c->in_recovery());
  s = dispatch();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0].seq(), partial);
  // Full ACK (covers "recover"): leave recovery with cwnd <= ssthresh.
  in(seg(kAck, irs + 1, high));
  EXPECT_FALSE(c->in_recovery());
  EXPECT_LE(c->cwnd(), c->ssthresh());
}

TEST_F(ConnTest, TimeoutResetsCwndAndGoesBackN) {  // RFC 5681 §3.1 (LW), RFC 6298 §5.4
  establish_active();
  c->set_nodelay(true);
  c->send(pattern(3 * kMss));
  dispatch();
  auto s = run_to_deadline();
  EXPECT_EQ(c->cwnd(), uint32_t(kMss));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].seq(), iss + 1);
  in(seg(kAck, irs + 1, iss + 1 + kMss));
  s = dispatch();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0].seq(), iss + 1 + kMss);  // resending what followed
}

// RFC 9293 §3.4: sequence numbers are compared modulo 2^32, so a connection must keep
// working after 2^31 and 2^32 bytes (nothing may compare against ISS or IRS).
TEST_F(ConnTest, SequenceSpaceWrapsBothWays) {
  class Counting : public SegmentSink {
   public:
    bool send(const FourTuple&, const TcpRepr& r, std::span<const uint8_t> p1,
              std::span<const uint8_t> p2) override {
      bytes += p1.size() + p2.size();
      last_ack = r.ack;
      return true;
    }
    uint64_t bytes = 0;
    SeqNum last_ack;
  } sink;
  establish_active();
  c->set_nodelay(true);
  std::vector<uint8_t> d(8 * kMss, 0x11), rd(8 * kMss);
  SeqNum peer_seq = irs + 1;
  const uint64_t total = (5ull << 30) / d.size() * d.size();  // ~5 GiB each way
  uint64_t moved = 0;
  while (moved < total) {
    ASSERT_EQ(c->send(d), int64_t(d.size()));
    c->dispatch(now, sink);
    // The peer acknowledges everything and sends as much back.
    in(seg(kAck, peer_seq, c->snd_nxt(), 65535, d));
    peer_seq += uint32_t(d.size());
    ASSERT_EQ(c->recv(rd), int64_t(rd.size()));
    moved += d.size();
  }
  EXPECT_EQ(sink.bytes, total);
  EXPECT_EQ(c->snd_una(), iss + 1 + uint32_t(total));
  EXPECT_EQ(c->rcv_nxt(), peer_seq);
  EXPECT_EQ(c->state(), TcpState::kEstablished);
  EXPECT_EQ(c->send_queued(), 0u);
}

TEST_F(ConnTest, SendBufferFullReturnsZero) {
  cfg.sndbuf = 1000;
  establish_active();
  EXPECT_EQ(c->send(pattern(1500)), 1000);
  EXPECT_EQ(c->send(pattern(10)), 0);
  EXPECT_FALSE(c->writable());
}

TEST_F(ConnTest, SendBeforeOpenIsNotConnected) {  // RFC 9293 §3.10.2
  make();
  EXPECT_EQ(c->send(pattern(10)), -ENOTCONN);
  std::vector<uint8_t> b(10);
  EXPECT_EQ(c->recv(b), -ENOTCONN);
}

}  // namespace
}  // namespace utcp::test
