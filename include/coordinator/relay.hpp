#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "coordinator/api_keys.hpp"
#include "coordinator/asio.hpp"
#include "coordinator/child_client.hpp"
#include "coordinator/config.hpp"
#include "coordinator/dispatcher.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/protocol_answer.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/relay_signals.hpp"
#include "coordinator/upstream.hpp"
#include "coordinator/usage.hpp"

namespace coordinator {

// Relays in progress, so that something outside can steer one: POST
// /v1/cancel/{req_id} ends the relay of that req_id (the real child stops a
// request in progress only when its connection closes), and a quota signal in
// a child's log sends that child's attempts that delivered nothing elsewhere.
class ActiveRelays {
 public:
  void add(const std::string& req_id, std::weak_ptr<RelaySignals> signals) { by_req_id_[req_id] = std::move(signals); }
  void remove(const std::string& req_id) { by_req_id_.erase(req_id); }
  // Ends the relay of `req_id`; false when none is in progress.
  bool cancel(const std::string& req_id);

  // No allocation once warm: this runs for every request.
  void add_attempt(std::size_t child, RelaySignals* signals);
  void remove_attempt(std::size_t child, RelaySignals* signals);
  void retry_elsewhere(std::size_t child);
  // The models the attempts on `child` asked for; nothing when one of them named none.
  std::vector<std::string> models_on(std::size_t child) const;

 private:
  std::unordered_map<std::string, std::weak_ptr<RelaySignals>> by_req_id_;
  std::vector<std::vector<RelaySignals*>> attempts_;  // by child
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
  // With keys, queued requests take turns by key (Dispatcher::pump).
  const ApiKeyStore* api_keys = nullptr;
};

// The model a request names (empty: any child): a view into the request body,
// or the decoded text when the body wrote it with escapes. Held by the relay's
// frame, so it outlives the router's call that made it.
struct RequestedModel {
  std::string_view in_body;
  std::optional<std::string> decoded;
  std::string_view view() const { return decoded ? std::string_view(*decoded) : in_body; }
};

struct ForwardResult {
  unsigned status = 0;              // what the client was sent (0: nothing, the client left)
  std::string child;                // the child that answered, if any
  bool client_reusable = false;     // the client connection may carry another request
  std::uint64_t bytes_sent = 0;     // body bytes relayed to the client
  double stream_ttfb = -1;          // seconds to the first byte of a streamed answer (-1: not a stream)
  bool took_slot = false;           // a chat request (counted in the usage book), not /v1/models
  std::optional<TokenUsage> usage;  // what a 2xx answer reported (its body's or its last chunk's `usage`)
};

// Forwards `request` to a child and relays its answer to `client` as it
// arrives, retrying on the next child while nothing has been sent.
// `stream_requested` is the body's "stream": true; `takes_slot` is false for
// requests that do not occupy a child (/v1/models).
// `client_address` is the peer's address, read once per connection (X-Forwarded-For).
// `model` is the body's model: only children that may serve it get the request,
// and when no serving child may, the client gets 404 model_not_found.
// What happened goes to `result`; the awaited value is its `client_reusable`.
// `protocol`: the client's protocol when it is not chat completions (the
// request is already translated; the answer is turned back on its way).
awaitable<bool> forward_request(ForwardContext& context, TcpStream& client,
                                const http::request<http::string_body>& request, bool stream_requested, bool takes_slot,
                                bool client_keep_alive, std::string client_address, RequestedModel model,
                                ForwardResult& result, ProtocolAnswer* protocol = nullptr);

// The child's own log says its account ran out of quota (the real child then
// re-queues a non-streamed request until its 420 s timeout): it cools down for
// --quota-cooldown, and its attempts that have delivered nothing go elsewhere.
void report_quota_from_child_log(ForwardContext& context, std::size_t child, const std::string& why);

}  // namespace coordinator
