// pool_filler.h - utcpd's endpoint pool is refilled on a worker thread (issue 8.4).
// Making a pooled endpoint means the module allocating and zeroing its rings and the
// registry mapping them: milliseconds in an emulated guest. Done in the event loop, a
// request that arrives meanwhile waits for it; here the worker makes them while the
// loop goes on serving, and hands each over through an eventfd the loop polls.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "device/kmod_device.h"
#include "module_control.h"

namespace utcp::registry {

class PoolFiller {
 public:
  // One endpoint made by the worker: `error` 0 and the endpoint with the registry's own
  // mapping (`dev`, holding `refs` references to the file; may be null), or -errno and
  // `why`.
  struct Made {
    Endpoint ep;
    std::unique_ptr<KmodDevice> dev;
    uint32_t refs = 0;
    int error = 0;
    std::string why;
  };
  // `make` runs on the worker thread: it must touch nothing the event loop changes.
  explicit PoolFiller(std::function<Made()> make) : make_(std::move(make)) {}
  ~PoolFiller();
  PoolFiller(const PoolFiller&) = delete;
  PoolFiller& operator=(const PoolFiller&) = delete;

  // The eventfd and the worker; 0 or -errno with `err`.
  int start(std::string* err);
  // Readable (EPOLLIN) when made endpoints wait for take().
  int fd() const { return event_fd_; }
  // Asks for `n` more endpoints.
  void request(size_t n);
  // The endpoints made since the last call.
  std::vector<Made> take();
  // Asked for and not taken yet (made or being made).
  size_t pending() const { return pending_; }

 private:
  void work();

  std::function<Made()> make_;
  int event_fd_ = -1;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t wanted_ = 0;       // guarded by mu_: still to make
  std::vector<Made> made_;  // guarded by mu_
  size_t dropped_ = 0;      // guarded by mu_: asked for, not made (the module refused)
  bool stop_ = false;       // guarded by mu_
  size_t pending_ = 0;      // the event loop's count
};

}  // namespace utcp::registry
