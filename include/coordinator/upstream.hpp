#pragma once

#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// Opens a connection to `host`:`port` within `timeout` (a name is resolved
// off the event loop by Asio's resolver).
awaitable<std::optional<beast::tcp_stream>> connect_to_child(const std::string& host, int port, Clock::duration timeout,
                                                             error_code& ec);

// Idle keep-alive connections per child, so requests do not pay a handshake.
// A connection goes back only after a complete, well-framed exchange.
class UpstreamPool {
 public:
  UpstreamPool(std::size_t children, std::size_t max_idle_per_child, Clock::duration max_idle_age);

  // An idle connection that still looks open, if any.
  std::optional<beast::tcp_stream> take(std::size_t child);
  void give_back(std::size_t child, beast::tcp_stream stream);
  // Room for slots added by a live reload.
  void resize(std::size_t children) {
    if (children > idle_.size()) idle_.resize(children);
  }

 private:
  struct Idle {
    beast::tcp_stream stream;
    Clock::time_point since;
  };
  std::vector<std::deque<Idle>> idle_;
  std::size_t max_idle_per_child_;
  Clock::duration max_idle_age_;
};

// A whole small exchange with a child on a fresh connection, bounded by
// `timeout` overall: health checks and cancels. `headers` are added to the
// request (a cancel carries the client's credentials).
struct SimpleResponse {
  unsigned status = 0;
  std::string body;
};
awaitable<std::optional<SimpleResponse>> simple_request(std::string host, int port, http::verb method,
                                                        std::string target, std::string body, Clock::duration timeout,
                                                        std::string& error,
                                                        std::vector<std::pair<std::string, std::string>> headers = {});

}  // namespace coordinator
