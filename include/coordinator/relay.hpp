#pragma once

#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

// What the router needs to forward requests: settings, the children and their
// connections. Owned by the server; one per process.
struct ForwardContext {
  const Config& config;
  Registry& registry;
  UpstreamPool& pool;
};

struct ForwardResult {
  unsigned status = 0;           // what the client was sent (0: nothing, the client left)
  std::string child;             // the child that answered, if any
  bool client_reusable = false;  // the client connection may carry another request
  std::uint64_t bytes_sent = 0;  // body bytes relayed to the client
};

// Forwards `request` to the next ready child and relays its answer to
// `client` as it arrives, retrying on the next child while nothing has been
// sent. `stream_requested` is the body's "stream": true.
awaitable<ForwardResult> forward_request(ForwardContext& context, beast::tcp_stream& client,
                                         const http::request<http::string_body>& request, bool stream_requested,
                                         bool client_keep_alive);

}  // namespace coordinator
