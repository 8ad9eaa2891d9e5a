// pool_filler.cc - the worker thread that makes utcpd's pooled endpoints.
#include "pool_filler.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace utcp::registry {

PoolFiller::~PoolFiller() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  // Endpoints made and never taken stay in the module with the pool's placeholder
  // template: the next utcpd recognises and drops them (recover()).
  if (event_fd_ >= 0) ::close(event_fd_);
}

int PoolFiller::start(std::string* err) {
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) {
    int e = errno;
    *err = std::string("eventfd for the endpoint pool: ") + std::strerror(e);
    return -e;
  }
  try {
    worker_ = std::thread([this] { work(); });
  } catch (const std::system_error& e) {
    *err = std::string("cannot start the endpoint pool's thread: ") + e.what();
    return -EAGAIN;
  }
  return 0;
}

void PoolFiller::request(size_t n) {
  if (n == 0) return;
  pending_ += n;
  {
    std::lock_guard lock(mu_);
    wanted_ += n;
  }
  cv_.notify_one();
}

std::vector<PoolFiller::Made> PoolFiller::take() {
  uint64_t count;
  while (::read(event_fd_, &count, sizeof count) < 0 && errno == EINTR) {}
  std::vector<Made> out;
  size_t dropped;
  {
    std::lock_guard lock(mu_);
    out.swap(made_);
    dropped = dropped_;
    dropped_ = 0;
  }
  pending_ -= std::min(pending_, out.size() + dropped);
  return out;
}

void PoolFiller::work() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || wanted_ > 0; });
      if (stop_) return;
      --wanted_;
    }
    Made m = make_();
    const bool failed = m.error != 0;
    {
      std::lock_guard lock(mu_);
      made_.push_back(std::move(m));
      // After a refusal the module is full: what was still wanted is dropped (the event
      // loop asks again once an endpoint goes).
      if (failed) {
        dropped_ += wanted_;
        wanted_ = 0;
      }
    }
    const uint64_t one = 1;
    while (::write(event_fd_, &one, sizeof one) < 0 && errno == EINTR) {}
  }
}

}  // namespace utcp::registry
