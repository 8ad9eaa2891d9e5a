// echo_cpp.cc - a minimal TCP echo server and client on libutcp's C++ layer (utcp.hpp).
//
//   echo_cpp [TEXT...]     sends TEXT (or, without TEXT, all of stdin) to an echo server
//                          and writes what comes back to stdout
//
// The same program as echo_c.c, with RAII handles: StackHandle destroys a stack, Socket
// closes a socket. Both ends run in this process over the raw-packet API (utcp/raw.h):
// server 10.0.0.1 port 7, client 10.0.0.2, a few lines of "wire" carrying each IPv4
// packet from one stack to the other, manual clocks (virtual time).
//
// Build against an installed libutcp:  c++ -std=c++20 echo_cpp.cc $(pkg-config --cflags --libs utcp)
#include <utcp/raw.h>
#include <utcp/utcp.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kServerIp = 0x0a000001;  // 10.0.0.1
constexpr uint32_t kClientIp = 0x0a000002;  // 10.0.0.2
constexpr uint16_t kEchoPort = 7;
constexpr int64_t kStepUs = 1000;                // virtual time per idle round
constexpr int64_t kGiveUpUs = 600LL * 1000000;   // virtual time after which something is wrong

// A failed call: what it was and the library's text for the error.
struct Error {
  std::string what;
  int err;
};

void check(const char* what, int64_t rc) {
  if (rc < 0) throw Error{what, int(rc)};
}

// The wire: moves every packet `from` emitted into `to`; returns how many moved.
int carry(utcp_stack* from, utcp_stack* to) {
  std::vector<uint8_t> pkt(65536);
  int moved = 0;
  for (ssize_t n; (n = utcp_raw_collect(from, pkt.data(), pkt.size())) > 0;)
    if (utcp_raw_inject(to, pkt.data(), size_t(n)) == 0) ++moved;
  return moved;
}

// The server's one connection: echoes what it reads, closes after the client's FIN.
class EchoServer {
 public:
  explicit EchoServer(utcp_stack* s) : listener_(s) {
    check("server socket", listener_.fd());
    check("server bind", listener_.bind(kEchoPort));
    check("server listen", listener_.listen(8));
  }

  void step() {
    if (!conn_.valid()) {
      int err = 0;
      conn_ = listener_.accept(&err);
      if (err == -EAGAIN) return;
      check("server accept", err);
    }
    if (done_) return;
    for (;;) {
      while (off_ < pending_.size()) {
        ssize_t w = conn_.write(std::span<const uint8_t>(pending_).subspan(off_));
        if (w == -EAGAIN) return;  // send buffer full: wait for ACKs
        check("server write", w);
        off_ += size_t(w);
      }
      pending_.resize(16384);
      ssize_t r = conn_.read(pending_);
      if (r == -EAGAIN) {
        pending_.clear();
        return;
      }
      check("server read", r);
      pending_.resize(size_t(r));
      off_ = 0;
      if (r == 0) {  // the client is done sending: so are we
        check("server close", conn_.close());
        done_ = true;
        return;
      }
    }
  }

 private:
  utcp::api::Socket listener_, conn_;
  std::vector<uint8_t> pending_;  // read but not yet written back
  size_t off_ = 0;
  bool done_ = false;
};

// The client: writes the input, half-closes, reads the echo until the server's FIN.
class EchoClient {
 public:
  EchoClient(utcp_stack* s, const std::vector<uint8_t>& in) : sock_(s), in_(in) {
    check("client socket", sock_.fd());
    int rc = sock_.connect(kServerIp, kEchoPort);
    if (rc != -EINPROGRESS) throw Error{"client connect", rc};
  }

  bool done() const { return eof_; }
  const std::vector<uint8_t>& echoed() const { return out_; }

  void step() {
    int ev = sock_.events();
    check("client poll", ev);
    if (ev & UTCP_POLLERR) {
      int err = sock_.option(UTCP_SO_ERROR);
      throw Error{"client connect", err ? -std::abs(err) : -ECONNRESET};
    }
    if (!(ev & UTCP_POLLOUT) && !shut_) return;  // handshake not finished yet
    while (sent_ < in_.size()) {
      ssize_t w = sock_.write(std::span<const uint8_t>(in_).subspan(sent_));
      if (w == -EAGAIN) break;
      check("client write", w);
      sent_ += size_t(w);
    }
    if (sent_ == in_.size() && !shut_) {
      check("client shutdown", sock_.shutdown(UTCP_SHUT_WR));
      shut_ = true;
    }
    uint8_t buf[16384];
    for (;;) {
      ssize_t r = sock_.read(buf);
      if (r == -EAGAIN) return;
      check("client read", r);
      if (r == 0) {
        eof_ = true;
        return;
      }
      out_.insert(out_.end(), buf, buf + r);
      if (out_.size() > in_.size()) throw Error{"the server sent back more than the client sent", -EPROTO};
    }
  }

 private:
  utcp::api::Socket sock_;
  const std::vector<uint8_t>& in_;
  std::vector<uint8_t> out_;
  size_t sent_ = 0;
  bool shut_ = false, eof_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::printf("usage: echo_cpp [TEXT...]\n"
                "Sends TEXT (or all of stdin) through a utcp TCP connection to an echo server in\n"
                "this process and writes the echo to stdout. Exit status 1 if the echo differs.\n");
    return 0;
  }
  std::vector<uint8_t> in;
  if (argc > 1) {
    std::string text;
    for (int i = 1; i < argc; ++i) text += std::string(argv[i]) + (i + 1 < argc ? " " : "\n");
    in.assign(text.begin(), text.end());
  } else {
    in.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }

  try {
    // Declared before the sockets, so the sockets close before their stacks go.
    utcp::api::StackHandle srv(utcp_raw_create(kServerIp, 1500, 0, 0));
    utcp::api::StackHandle cli(utcp_raw_create(kClientIp, 1500, 0, 0));
    if (!srv.get() || !cli.get()) throw Error{"creating the stacks", -errno};
    EchoServer server(srv.get());
    EchoClient client(cli.get(), in);

    int64_t t = 0;
    while (!client.done()) {
      server.step();
      client.step();
      // Socket calls take effect when a stack runs: run both now, then carry packets.
      utcp_raw_advance(srv.get(), 0);
      utcp_raw_advance(cli.get(), 0);
      if (carry(cli.get(), srv.get()) + carry(srv.get(), cli.get()) > 0) continue;
      if (t > kGiveUpUs) throw Error{"no progress after 600 s of virtual time", -ETIMEDOUT};
      utcp_raw_advance(srv.get(), kStepUs);  // nothing on the wire: let timers run
      utcp_raw_advance(cli.get(), kStepUs);
      t += kStepUs;
    }
    const std::vector<uint8_t>& out = client.echoed();
    std::fwrite(out.data(), 1, out.size(), stdout);
    bool same = out == in;
    std::fprintf(stderr, "echo_cpp: sent %zu bytes, got %zu back%s\n", in.size(), out.size(),
                 same ? "" : " (DIFFERENT)");
    return same ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "echo_cpp: %s: %s\n", e.what.c_str(), utcp::api::error_string(e.err).c_str());
    return 1;
  }
}
