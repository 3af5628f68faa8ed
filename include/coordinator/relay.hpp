#pragma once

#include <functional>
#include <string>
#include <unordered_map>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/dispatcher.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/responses.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

// Relays in progress, by the child's req_id (seen in their answers), so that
// POST /v1/cancel/{req_id} can end one: the real child stops a request in
// progress only when its connection closes.
class ActiveRelays {
 public:
  void add(const std::string& req_id, std::function<void()> cancel) { cancellers_[req_id] = std::move(cancel); }
  void remove(const std::string& req_id) { cancellers_.erase(req_id); }
  // Ends the relay of `req_id`; false when none is in progress.
  bool cancel(const std::string& req_id) {
    const auto found = cancellers_.find(req_id);
    if (found == cancellers_.end()) return false;
    auto cancel_it = std::move(found->second);
    cancellers_.erase(found);
    cancel_it();
    return true;
  }

  // Attempts in progress on each child, so that a quota signal seen in the
  // child's log can send the ones that have delivered nothing to another child.
  void add_attempt(std::size_t child, const void* key, std::function<void()> retry_elsewhere) {
    attempts_[child][key] = std::move(retry_elsewhere);
  }
  void remove_attempt(std::size_t child, const void* key) {
    if (const auto found = attempts_.find(child); found != attempts_.end()) found->second.erase(key);
  }
  void retry_elsewhere(std::size_t child) {
    const auto found = attempts_.find(child);
    if (found == attempts_.end()) return;
    const auto callbacks = found->second;  // a callback may remove itself
    for (const auto& [key, retry] : callbacks) retry();
  }

 private:
  std::unordered_map<std::string, std::function<void()>> cancellers_;
  std::unordered_map<std::size_t, std::unordered_map<const void*, std::function<void()>>> attempts_;
};

// What the router needs to forward requests: settings, the children, who
// gets the next request, and their connections. One per process.
struct ForwardContext {
  const Config& config;
  Registry& registry;
  Dispatcher& dispatcher;
  UpstreamPool& pool;
  // Stop and restart a child that stalled (the supervisor's job).
  std::function<void(std::size_t, std::string)> recycle;
  Metrics* metrics = nullptr;
  ActiveRelays* active = nullptr;
};

struct ForwardResult {
  unsigned status = 0;           // what the client was sent (0: nothing, the client left)
  std::string child;             // the child that answered, if any
  bool client_reusable = false;  // the client connection may carry another request
  std::uint64_t bytes_sent = 0;  // body bytes relayed to the client
  double stream_ttfb = -1;       // seconds to the first byte of a streamed answer (-1: not a stream)
};

// Forwards `request` to a child and relays its answer to `client` as it
// arrives, retrying on the next child while nothing has been sent.
// `stream_requested` is the body's "stream": true; `takes_slot` is false for
// requests that do not occupy a child (/v1/models).
// `client_address` is the peer's address, read once per connection (X-Forwarded-For).
awaitable<ForwardResult> forward_request(ForwardContext& context, beast::tcp_stream& client,
                                         const http::request<http::string_body>& request, bool stream_requested,
                                         bool takes_slot, bool client_keep_alive, std::string client_address);

// The child's own log says its account ran out of quota (the real child then
// re-queues a non-streamed request until its 420 s timeout): it cools down for
// --quota-cooldown, and its attempts that have delivered nothing go elsewhere.
void report_quota_from_child_log(ForwardContext& context, net::any_io_executor executor, std::size_t child,
                                 const std::string& why);

// Sends POST /v1/cancel/{req_id} to one child with the client's credentials
// (`auth`: Authorization and X-API-Key, empty values left out); logs the outcome.
// Returns the child's status, 0 when it did not answer.
awaitable<unsigned> cancel_on_child(std::string child, std::string host, int port, std::string req_id,
                                    Clock::duration timeout, ExtraHeaders auth);

// The client's credentials, to be carried by the coordinator's own calls to a child.
ExtraHeaders credentials_of(const http::request<http::string_body>& request);

}  // namespace coordinator
