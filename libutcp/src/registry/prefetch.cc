// prefetch.cc - endpoints asked of utcpd ahead of the connect that will use them.
#include "registry/prefetch.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace utcp::registry {

int GrantPrefetcher::start(std::string* error, const char* path) { return reg_.connect(error, path); }

void GrantPrefetcher::adopt(int registry_fd) { reg_.adopt(registry_fd); }

GrantPrefetcher::~GrantPrefetcher() {
  // Ready grants go back now. Connects still unanswered need nothing: their replies, and
  // the endpoint files in them, are dropped with this client's socket, and utcpd frees an
  // endpoint whose file is gone and that never sent a frame.
  for (auto& [k, q] : ready_)
    for (auto& r : q) drop(r);
}

size_t GrantPrefetcher::ready() const {
  size_t n = 0;
  for (const auto& [k, q] : ready_) n += q.size();
  return n;
}

void GrantPrefetcher::drop(Ready& r) {
  if (r.rc < 0 || (r.grant.endpoint_fd < 0 && !r.reuse_id)) return;
  std::string ignored;
  reg_.release(r.reuse_id ? r.reuse_id : r.grant.endpoint_id, &ignored, false);
  if (r.grant.endpoint_fd >= 0) ::close(r.grant.endpoint_fd);
  r.grant.endpoint_fd = -1;
  if (r.reuse_id) given_back_.push_back(std::exchange(r.reuse_id, 0));  // the owner's file and mapping go too
}

size_t GrantPrefetcher::have(Key k) const {
  size_t n = 0;
  if (auto it = ready_.find(k); it != ready_.end()) n = it->second.size();
  for (const auto& [seq, a] : asked_) n += a.dest == k;
  for (const auto& [id, dest] : cycling_) n += dest == k;
  return n;
}

int GrantPrefetcher::collect(bool wait, std::string* error) {
  Ready r;
  uint32_t seq = 0;
  r.rc = reg_.receive_connect(wait, &seq, &r.grant, &r.error);
  if (seq == 0) {
    if (r.rc == -EAGAIN && !wait) return r.rc;
    // The connection to utcpd failed: nothing asked will be answered.
    asked_.clear();
    *error = r.error;
    return r.rc < 0 ? r.rc : -EBADMSG;
  }
  auto it = asked_.find(seq);
  if (it == asked_.end()) {
    // An answer to nothing we asked: the registry is confused; give back what it sent.
    drop(r);
    *error = "the registry answered a Connect that was not asked (sequence " + std::to_string(seq) + ")";
    return -EBADMSG;
  }
  const Asked a = it->second;
  asked_.erase(it);
  r.at = a.at;
  if (a.reuse_id) {
    // The owner has this endpoint's file: any file sent along is one too many. A refusal
    // left the endpoint on its old 4-tuple, still granted: it goes back (given_back()),
    // and the owner's next connect to this destination asks for a new one.
    if (r.rc == 0 && r.grant.endpoint_fd >= 0) ::close(std::exchange(r.grant.endpoint_fd, -1));
    if (r.rc == 0 && r.grant.endpoint_id != a.reuse_id) {
      *error = "the registry answered the reuse of endpoint " + std::to_string(a.reuse_id) + " with endpoint " +
               std::to_string(r.grant.endpoint_id);
      return -EBADMSG;
    }
    r.reuse_id = a.reuse_id;
    if (r.rc < 0) {
      r.rc = 0;
      drop(r);
      return 0;
    }
  } else if (r.rc == 0 && r.grant.endpoint_fd < 0) {
    r.rc = -EBADMSG;
    r.error = "the registry granted an endpoint but sent no endpoint file";
  }
  ready_[a.dest].push_back(std::move(r));
  return 0;
}

void GrantPrefetcher::expire(Clock::time_point now) {
  for (auto it = ready_.begin(); it != ready_.end();) {
    auto& q = it->second;
    while (!q.empty() && now - q.front().at > opt_.max_age) {
      if (q.front().rc == 0) ++expired_;
      drop(q.front());
      q.pop_front();
    }
    it = q.empty() ? ready_.erase(it) : std::next(it);
  }
}

void GrantPrefetcher::ask_ahead(Key k, Ipv4Addr remote, uint16_t remote_port) {
  size_t n = have(k);
  // A destination not followed yet gets no Connects ahead once max_destinations are.
  if (n == 0 && ready_.size() >= opt_.max_destinations) return;
  for (; n < opt_.depth; ++n) {
    uint32_t seq = 0;
    std::string ignored;
    if (reg_.send_connect(remote, remote_port, &seq, &ignored) < 0) return;  // take() reports it next time
    asked_[seq] = Asked{k, Clock::now()};
  }
}

bool GrantPrefetcher::asked_for(Key k) const {
  for (const auto& [seq, a] : asked_)
    if (a.dest == k) return true;
  return false;
}

int GrantPrefetcher::collect_ready(std::string* error) {
  while (!asked_.empty()) {
    int rc = collect(false, error);
    if (rc == -EAGAIN) break;
    if (rc < 0) return rc;
  }
  return 0;
}

int GrantPrefetcher::take(Ipv4Addr remote, uint16_t remote_port, Grant* out, std::string* error) {
  const Key k = key(remote, remote_port);
  // Everything utcpd has answered so far, without waiting; then what is too old goes.
  if (int rc = collect_ready(error); rc < 0) return rc;
  expire(Clock::now());
  auto ready_now = [&] { return ready_.count(k) && !ready_[k].empty(); };
  const bool hit = ready_now();
  // Until an answer for k is there (a refused reuse is none: ask for a new endpoint then).
  while (!ready_now()) {
    if (!asked_for(k)) {
      uint32_t seq = 0;
      if (int rc = reg_.send_connect(remote, remote_port, &seq, error); rc < 0) return rc;
      asked_[seq] = Asked{k, Clock::now()};
    }
    if (int rc = collect(true, error); rc < 0) return rc;
  }
  auto& q = ready_[k];
  // A recycled endpoint first: it is mapped already.
  auto pick = std::find_if(q.begin(), q.end(), [](const Ready& x) { return x.reuse_id != 0; });
  if (pick == q.end()) pick = q.begin();
  Ready r = std::move(*pick);
  q.erase(pick);
  if (q.empty()) ready_.erase(k);
  ++taken_;
  hits_ += hit;
  if (r.reuse_id) {
    ++reused_;
    cycling_[r.reuse_id] = k;
  }
  if (r.rc < 0) {
    *error = std::move(r.error);
    return r.rc;  // a refusal is not asked again ahead: the next take() asks for itself
  }
  *out = r.grant;
  ask_ahead(k, remote, remote_port);
  return 0;
}

int GrantPrefetcher::release(uint32_t endpoint_id, std::string* error) {
  cycling_.erase(endpoint_id);
  return reg_.release(endpoint_id, error, false);
}

int GrantPrefetcher::recycle(uint32_t endpoint_id, Ipv4Addr remote, uint16_t remote_port, std::string* error) {
  cycling_.erase(endpoint_id);
  uint32_t seq = 0;
  if (int rc = reg_.send_connect(remote, remote_port, &seq, error, endpoint_id); rc < 0) return rc;
  asked_[seq] = Asked{key(remote, remote_port), Clock::now(), endpoint_id};
  return 0;
}

}  // namespace utcp::registry
