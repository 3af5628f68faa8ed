#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// A connection to a child, held by pointer: moving a Beast 1.74 stream
// allocates a new one inside, and a pooled connection moves several times.
using ChildConnection = std::unique_ptr<TcpStream>;

// Opens a connection to `host`:`port` within `timeout` (a name is resolved
// off the event loop by Asio's resolver); null on failure.
awaitable<ChildConnection> connect_to_child(const std::string& host, int port, Clock::duration timeout, error_code& ec);

// Idle keep-alive connections per child, so requests do not pay a handshake.
// A connection goes back only after a complete, well-framed exchange.
class UpstreamPool {
 public:
  UpstreamPool(std::size_t children, std::size_t max_idle_per_child, Clock::duration max_idle_age);

  // The most recently returned idle connection younger than max_idle_age, if
  // any. The child may have closed it meanwhile (no peek: that was a system
  // call per request): the caller retries one that fails before any answer
  // on a fresh connection.
  ChildConnection take(std::size_t child);
  // Closes every idle connection to `child` (one of them was found closed).
  void drop(std::size_t child) { idle_.at(child).clear(); }
  void give_back(std::size_t child, ChildConnection stream);
  // Room for slots added by a live reload.
  void resize(std::size_t children) {
    if (children > idle_.size()) idle_.resize(children);
  }

 private:
  struct Idle {
    ChildConnection stream;
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
// Writes `request` and reads the whole answer (at most 1 MiB) on a connected
// `stream` whose deadline is set: simple_request's exchange, over TCP or TLS.
template <class Stream>
awaitable<std::optional<SimpleResponse>> exchange_simple_request(Stream& stream,
                                                                 http::request<http::string_body> request,
                                                                 std::string& error) {
  error_code ec;
  co_await http::async_write(stream, request, use_awaitable_ec(ec));
  if (ec) {
    error = "send: " + ec.message();
    co_return std::nullopt;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024 * 1024);
  co_await http::async_read(stream, buffer, parser, use_awaitable_ec(ec));
  if (ec) {
    error = ec == beast::error::timeout ? std::string("timed out") : "read: " + ec.message();
    co_return std::nullopt;
  }
  co_return SimpleResponse{parser.get().result_int(), std::move(parser.get().body())};
}

// The request simple_request sends (also over TLS: tls_client.hpp).
http::request<http::string_body> simple_request_message(
    const std::string& host, int port, http::verb method, std::string target, std::string body,
    const std::vector<std::pair<std::string, std::string>>& headers);

}  // namespace coordinator
