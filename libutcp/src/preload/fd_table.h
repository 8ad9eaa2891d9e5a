// fd_table.h - which file descriptors of the process are utcp sockets.
//
// Every interposed call asks "is this fd ours?" first, so the answer for the common case
// (a file, a pipe, a Unix socket: not ours) must be one relaxed load with no lock — it is
// also what keeps pass-through safe inside signal handlers. A byte array indexed by fd
// says "maybe ours"; the entry itself (shared by dup'd descriptors) is looked up under a
// mutex. Descriptors at or above kMaxFd are never taken over.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace utcp::preload {

template <typename T>
class FdTable {
 public:
  static constexpr int kMaxFd = 1 << 20;

  FdTable() = default;
  FdTable(const FdTable&) = delete;
  FdTable& operator=(const FdTable&) = delete;

  // Lock-free: false for every fd that was never set (or was erased).
  bool maybe(int fd) const {
    if (fd < 0 || fd >= kMaxFd) return false;
    const std::atomic<uint8_t>* m = marks_.load(std::memory_order_acquire);
    return m && m[fd].load(std::memory_order_relaxed);
  }
  std::shared_ptr<T> get(int fd) const {
    if (!maybe(fd)) return nullptr;
    std::lock_guard<std::mutex> g(mu_);
    auto it = map_.find(fd);
    return it == map_.end() ? nullptr : it->second;
  }
  // false when fd is out of range (the caller leaves that descriptor to libc).
  bool set(int fd, std::shared_ptr<T> v) {
    if (fd < 0 || fd >= kMaxFd || !ensure_marks()) return false;
    std::lock_guard<std::mutex> g(mu_);
    map_[fd] = std::move(v);
    marks_.load()[fd].store(1, std::memory_order_release);
    return true;
  }
  // Removes fd; returns what it held (nullptr if nothing).
  std::shared_ptr<T> erase(int fd) {
    if (!maybe(fd)) return nullptr;
    std::lock_guard<std::mutex> g(mu_);
    marks_.load()[fd].store(0, std::memory_order_release);
    auto it = map_.find(fd);
    if (it == map_.end()) return nullptr;
    auto v = std::move(it->second);
    map_.erase(it);
    return v;
  }
  // The descriptors that refer to `v`.
  std::vector<int> fds_of(const T* v) const {
    std::vector<int> out;
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [fd, p] : map_)
      if (p.get() == v) out.push_back(fd);
    return out;
  }
  // Every distinct entry.
  std::vector<std::shared_ptr<T>> entries() const {
    std::vector<std::shared_ptr<T>> out;
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [fd, p] : map_)
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    return out;
  }
  size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return map_.size();
  }
  std::mutex& mutex() { return mu_; }  // for fork: held across it so the child's copy is consistent

 private:
  bool ensure_marks() {
    if (marks_.load(std::memory_order_acquire)) return true;
    std::lock_guard<std::mutex> g(mu_);
    if (marks_.load()) return true;
    // 1 MiB of zero pages, touched only where descriptors are.
    void* p = ::mmap(nullptr, kMaxFd, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    marks_.store(static_cast<std::atomic<uint8_t>*>(p), std::memory_order_release);
    return true;
  }

  std::atomic<std::atomic<uint8_t>*> marks_{nullptr};
  mutable std::mutex mu_;
  std::unordered_map<int, std::shared_ptr<T>> map_;
};

}  // namespace utcp::preload
