// prefetch.cc - endpoints asked of utcpd ahead of the connect that will use them.
#include "registry/prefetch.h"

#include <unistd.h>

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
  if (r.rc < 0 || r.grant.endpoint_fd < 0) return;
  std::string ignored;
  reg_.release(r.grant.endpoint_id, &ignored, false);
  ::close(r.grant.endpoint_fd);
  r.grant.endpoint_fd = -1;
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
  r.at = it->second.at;
  ready_[it->second.dest].push_back(std::move(r));
  asked_.erase(it);
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
  size_t have = 0;
  if (auto it = ready_.find(k); it != ready_.end()) have = it->second.size();
  for (const auto& [seq, a] : asked_) have += a.dest == k;
  // A destination not followed yet gets no Connects ahead once max_destinations are.
  if (have == 0 && ready_.size() >= opt_.max_destinations) return;
  for (; have < opt_.depth; ++have) {
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
  bool hit = ready_now();
  if (!hit) {
    if (!asked_for(k)) {
      uint32_t seq = 0;
      if (int rc = reg_.send_connect(remote, remote_port, &seq, error); rc < 0) return rc;
      asked_[seq] = Asked{k, Clock::now()};
    }
    while (!ready_now())
      if (int rc = collect(true, error); rc < 0) return rc;
  }
  auto& q = ready_[k];
  Ready r = std::move(q.front());
  q.pop_front();
  if (q.empty()) ready_.erase(k);
  ++taken_;
  hits_ += hit;
  if (r.rc < 0) {
    *error = std::move(r.error);
    return r.rc;  // a refusal is not asked again ahead: the next take() asks for itself
  }
  *out = r.grant;
  ask_ahead(k, remote, remote_port);
  return 0;
}

}  // namespace utcp::registry
