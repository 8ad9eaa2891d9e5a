// publish_test.cc - what a stack publishes for observers (api/publish.h, uapi
// utcp_app_info): the endpoint's connection, its state through its life, the seqlock.
#include <arpa/inet.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <vector>

#include "api/publish.h"
#include "stack_harness.h"

namespace utcp::test {
namespace {

// A device that offers an app-info area, as a module endpoint's header page does.
class PublishingDevice : public Device {
 public:
  explicit PublishingDevice(Device& inner) : inner_(inner) {}
  DeviceCaps caps() const override { return inner_.caps(); }
  size_t receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn, size_t max) override {
    return inner_.receive(now, fn, max);
  }
  std::span<uint8_t> tx_buffer(size_t len) override { return inner_.tx_buffer(len); }
  void tx_commit(size_t len) override { inner_.tx_commit(len); }
  void flush(Instant now) override { inner_.flush(now); }
  Instant poll_at() const override { return inner_.poll_at(); }
  utcp_app_info* app_info_area() override { return &area; }

  utcp_app_info area{};

 private:
  Device& inner_;
};

LinkConfig with_delay() {
  LinkConfig c;
  c.delay = Duration(500);  // an RTT to measure
  return c;
}

struct PublishTest : LeakChecked {
  PublishTest() : p(with_delay()), dev(p.link.a()) {
    p.a = StackPair::make_stack(dev, kIpA, kMacA, TcpConfig{}, 1);
  }
  void TearDown() override {
    p.a.reset();
    p.b.reset();
    LeakChecked::TearDown();
  }
  // `data` from A's client to B's server, all of it read there and acknowledged.
  bool send_all(const Connected& c, std::span<const uint8_t> data) {
    if (p.a->write(c.client, data) != int64_t(data.size())) return false;
    size_t got = 0;
    return p.run_until([&] {
      uint8_t buf[65536];
      int64_t n = p.b->read(c.server, buf);
      if (n > 0) got += size_t(n);
      return got == data.size() && p.a->connection(c.client)->send_queued() == 0;
    });
  }
  utcp_app_info read() {
    utcp_app_info out{};
    EXPECT_TRUE(read_app_info(&dev.area, &out));
    return out;
  }
  StackPair p;
  PublishingDevice dev;
};

TEST_F(PublishTest, NothingBeforeAConnection) {
  p.a->poll(p.now);
  utcp_app_info out{};
  EXPECT_FALSE(read_app_info(&dev.area, &out));  // magic unset: nothing published
}

TEST_F(PublishTest, EstablishedConnectionWithItsAddressesAndCounters) {
  Connected c = connect_pair(p, 8080);
  std::vector<uint8_t> data(100000, 0x5a);
  ASSERT_TRUE(send_all(c, data));
  // Publication is at most once a millisecond: a segment 2 ms later brings it up to date.
  p.now += Duration(2000);
  uint8_t one = 1;
  ASSERT_EQ(p.b->write(c.server, {&one, 1}), 1);
  ASSERT_TRUE(p.run_until([&] { return p.a->connection(c.client)->recv_queued() == 1; }));
  utcp_app_info i = read();
  EXPECT_EQ(i.magic, UTCP_APP_INFO_MAGIC);
  EXPECT_EQ(i.seq % 2, 0u);
  EXPECT_EQ(i.pid, uint32_t(::getpid()));
  EXPECT_STREQ(app_state_name(i.state), "ESTABLISHED");
  EXPECT_EQ(i.local_ip, htonl(kIpA.v));
  EXPECT_EQ(i.remote_ip, htonl(kIpB.v));
  EXPECT_EQ(i.remote_port, htons(8080));
  EXPECT_EQ(ntohs(i.local_port), p.a->local_port(c.client));
  const Connection* conn = p.a->connection(c.client);
  EXPECT_EQ(i.cwnd, conn->cwnd());
  EXPECT_EQ(i.snd_una, conn->snd_una().raw());
  EXPECT_EQ(i.snd_mss, conn->snd_mss());
  EXPECT_GE(i.bytes_sent, data.size());
  EXPECT_GT(i.segs_out, 0u);
  EXPECT_GT(i.srtt_us, 0u);
  EXPECT_GT(i.rto_us, 0u);
  EXPECT_EQ(i.send_queue, 0u);
  EXPECT_STREQ(i.congestion, std::string(conn->congestion()).c_str());
  EXPECT_TRUE(i.flags & UTCP_APPF_SACK);
  EXPECT_GT(i.updated_us, 0u);
  EXPECT_LE(i.updated_us, uint64_t(p.now.time_since_epoch().count()));
}

// The last ACK of a transfer often comes inside the publication interval of the one
// before: it must still be published when the interval ends, though nothing else happens
// on the connection afterwards (utcpctl ss showed a finished transfer as unacknowledged).
TEST_F(PublishTest, TheLastChangeIsPublishedWhenTheIntervalEnds) {
  Connected c = connect_pair(p, 8082);
  std::vector<uint8_t> data(100000, 0x5a);
  ASSERT_TRUE(send_all(c, data));
  p.now += Duration(2000);
  p.a->poll(p.now);  // nothing arrives: only the interval ends
  const Connection* conn = p.a->connection(c.client);
  utcp_app_info i = read();
  EXPECT_EQ(i.snd_una, conn->snd_una().raw());
  EXPECT_EQ(i.send_queue, 0u);
  EXPECT_GE(i.bytes_sent, data.size());
}

// Waiting for that end is no reason to wake within the interval: a busy connection would
// then sleep on a deadline under a millisecond away after nearly every exchange. A stack
// with nothing else to do wakes for the publication kPublishLag (50 ms) after the last.
TEST_F(PublishTest, APendingPublicationWakesTheStackOnlyLate) {
  Connected c = connect_pair(p, 8083);
  std::vector<uint8_t> data(100000, 0x5a);
  ASSERT_TRUE(send_all(c, data));
  const utcp_app_info before = read();
  ASSERT_NE(before.snd_una, p.a->connection(c.client)->snd_una().raw());  // a change waits
  const Instant published = Instant(Duration(int64_t(before.updated_us)));
  EXPECT_GE(p.a->poll_at(), published + Duration(50'000));
  p.now = p.a->poll_at();
  p.a->poll(p.now);
  EXPECT_EQ(read().snd_una, p.a->connection(c.client)->snd_una().raw());
}

TEST_F(PublishTest, FollowsTheConnectionToItsEnd) {
  Connected c = connect_pair(p, 8081);
  ASSERT_EQ(p.a->close(c.client), 0);  // we close first: FIN-WAIT, then TIME-WAIT
  ASSERT_EQ(p.b->close(c.server), 0);
  ASSERT_TRUE(p.run_until([&] {
    utcp_app_info i{};
    return read_app_info(&dev.area, &i) && i.state == uint8_t(TcpState::kTimeWait);
  }));
  ASSERT_TRUE(p.run_until([&] { return p.a->connection_count() == 0; }));
  EXPECT_STREQ(app_state_name(read().state), "CLOSED");
}

TEST_F(PublishTest, OneConnectionPerEndpointIsPublished) {
  Connected first = connect_pair(p, 8082);
  uint16_t first_port = p.a->local_port(first.client);
  int second = p.a->socket();
  ASSERT_EQ(p.a->connect(second, kIpB, 8082, p.now), -EINPROGRESS);
  int srv = -1;
  ASSERT_TRUE(p.run_until([&] {
    if (srv < 0) srv = p.b->accept(first.listener);
    if (srv == -EAGAIN) srv = -1;
    return srv >= 0 && (p.a->events(second) & kEventOut);
  }));
  EXPECT_EQ(ntohs(read().local_port), first_port);
}

TEST(PublishSeqlock, ReaderRefusesAnAreaBeingWritten) {
  utcp_app_info area{};
  area.magic = UTCP_APP_INFO_MAGIC;
  area.seq = 3;  // odd: a writer is in the middle
  utcp_app_info out{};
  EXPECT_FALSE(read_app_info(&area, &out));
  area.seq = 4;
  EXPECT_TRUE(read_app_info(&area, &out));
  EXPECT_EQ(out.seq, 4u);
  EXPECT_STREQ(app_state_name(200), "?");
}

}  // namespace
}  // namespace utcp::test
