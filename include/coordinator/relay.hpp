#pragma once

#include <functional>
#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/dispatcher.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

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

// Sends POST /v1/cancel/{req_id} to one child; logs the outcome.
awaitable<void> cancel_on_child(std::string child, std::string host, int port, std::string req_id,
                                Clock::duration timeout);

}  // namespace coordinator
