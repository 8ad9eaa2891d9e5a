// utcp.hpp - a thin C++ layer over utcp.h: RAII stack and socket handles, std::span I/O.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "utcp/utcp.h"

namespace utcp {
class Device;
}

namespace utcp::api {

// The C API's view of a C++ device (a utcp::Device, e.g. one side of a LinkPair).
inline utcp_device* c_device(utcp::Device& d) { return reinterpret_cast<utcp_device*>(&d); }

// Owns a utcp_stack*.
class StackHandle {
 public:
  StackHandle() = default;
  explicit StackHandle(utcp_stack* s) : s_(s) {}
  StackHandle(const utcp_stack_config& cfg, utcp_device* dev) : s_(utcp_stack_create(&cfg, dev)) {
    if (!s_) throw std::runtime_error("utcp_stack_create: invalid configuration");
  }
  StackHandle(StackHandle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StackHandle& operator=(StackHandle&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~StackHandle() { reset(); }
  void reset() {
    if (s_) utcp_stack_destroy(s_);
    s_ = nullptr;
  }
  utcp_stack* get() const { return s_; }
  int poll() { return utcp_stack_poll(s_); }
  // Polls, sleeps until frames, a timer or the timeout (-1: none), polls (utcp_stack_wait).
  int wait(int64_t timeout_us = -1) { return utcp_stack_wait(s_, timeout_us); }
  int fd() const { return utcp_stack_fd(s_); }

 private:
  utcp_stack* s_ = nullptr;
};

// Owns one socket of a stack; closes it on destruction (graceful, or abortive under
// SO_LINGER {1, 0}). The stack must outlive its sockets.
class Socket {
 public:
  Socket() = default;
  explicit Socket(utcp_stack* s) : s_(s), fd_(utcp_socket(s)) {}
  Socket(utcp_stack* s, int fd) : s_(s), fd_(fd) {}
  Socket(Socket&& o) noexcept : s_(o.s_), fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      close();
      s_ = o.s_;
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Socket() { close(); }

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int close() {
    int r = 0;
    if (fd_ >= 0) r = utcp_close(s_, fd_);
    fd_ = -1;
    return r;
  }

  int bind(uint16_t port) { return utcp_bind(s_, fd_, port); }
  int listen(int backlog = 128) { return utcp_listen(s_, fd_, backlog); }
  int connect(uint32_t ip, uint16_t port) { return utcp_connect(s_, fd_, ip, port); }
  // An invalid Socket and `err` (e.g. -EAGAIN) when nothing is waiting.
  // A blocking listener waits for one; accepted sockets inherit its mode.
  Socket accept(int* err = nullptr) {
    int r = utcp_accept(s_, fd_, nullptr, nullptr);
    if (err) *err = r < 0 ? r : 0;
    return r >= 0 ? Socket(s_, r) : Socket();
  }
  ssize_t read(std::span<uint8_t> b) { return utcp_read(s_, fd_, b.data(), b.size()); }
  ssize_t write(std::span<const uint8_t> b) { return utcp_write(s_, fd_, b.data(), b.size()); }
  int shutdown(int how) { return utcp_shutdown(s_, fd_, how); }
  int events() const { return utcp_poll(s_, fd_); }
  // Blocking calls (utcp_set_blocking): connect/accept/read/write wait, driving the stack.
  int set_blocking(bool on = true) { return utcp_set_blocking(s_, fd_, on ? 1 : 0); }
  int set_timeouts(int64_t recv_us, int64_t send_us) {
    int r = utcp_setsockopt(s_, fd_, UTCP_SO_RCVTIMEO, &recv_us, sizeof recv_us);
    return r < 0 ? r : utcp_setsockopt(s_, fd_, UTCP_SO_SNDTIMEO, &send_us, sizeof send_us);
  }
  int set_option(int opt, int v) { return utcp_setsockopt(s_, fd_, opt, &v, sizeof v); }
  int option(int opt) const {
    int v = 0;
    size_t len = sizeof v;
    int r = utcp_getsockopt(s_, fd_, opt, &v, &len);
    return r < 0 ? r : v;
  }

 private:
  utcp_stack* s_ = nullptr;
  int fd_ = -1;
};

inline std::string error_string(int err) { return utcp_strerror(err); }

}  // namespace utcp::api
