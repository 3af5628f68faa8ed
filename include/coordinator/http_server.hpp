#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "coordinator/api_keys.hpp"
#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/relay.hpp"
#include "coordinator/responses.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

// The /ready and /health body: fleet summary plus one entry per child.
// `extra` fields (e.g. the profile queue) are merged in.
std::string readiness_body(const Registry& registry, Clock::time_point now, const std::string& extra_json = {});

// The children as JSON, as in /ready's `children` and GET /admin/children.
std::string children_json(const Registry& registry, Clock::time_point now);

// What the admin API can ask of the rest of the daemon. Each returns an error
// message, or an empty string when done.
struct AdminActions {
  std::function<std::string(std::size_t)> restart;
  std::function<std::string(std::size_t)> drain;
  std::function<std::string(std::size_t)> undrain;
  std::function<std::string()> reload;  // API keys and profiles
};

// Everything the server works with besides its sockets.
struct ServerServices {
  Registry& registry;
  Dispatcher& dispatcher;
  UpstreamPool& pool;
  Metrics& metrics;
  const ApiKeyStore& api_keys;
  std::function<void(std::size_t, std::string)> recycle;
  std::function<std::string()> fleet_extra;  // extra /ready fields (JSON object)
  AdminActions admin;
};

// The client-facing HTTP/1.1 server: accepts, parses, routes and answers,
// forwarding /v1/* through the relay.
class HttpServer {
 public:
  HttpServer(net::io_context& io, const Config& config, ServerServices services);

  // Binds and listens; returns a one-line error on failure.
  std::string listen();
  void start();

  // Graceful shutdown: no new connections; idle keep-alive connections are
  // closed; busy ones close after their current answer.
  void stop_accepting();
  std::size_t requests_in_flight() const { return requests_in_flight_; }
  void close_all_connections();
  // A child's log showed a quota hit: cool it down, send its unserved attempts elsewhere.
  void note_child_quota(std::size_t child) {
    report_quota_from_child_log(forward_, child, "out of quota (its log: GLOBAL ALERT: Quota Exceeded!)");
  }

 private:
  struct Session {
    beast::tcp_stream* stream = nullptr;
    bool busy = false;
  };

  awaitable<void> accept_loop();
  awaitable<void> run_session(tcp::socket socket);
  awaitable<bool> route(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                        const net::ip::address& peer, ForwardResult& outcome);
  awaitable<bool> broadcast_cancel(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                                   std::string req_id, ForwardResult& outcome);
  awaitable<bool> reply(beast::tcp_stream& stream, const http::request<http::string_body>& request, unsigned status,
                        std::string body, ForwardResult& outcome, ExtraHeaders extra = {});
  // 200 with a non-JSON body (metrics, the status page); no body for HEAD.
  awaitable<bool> reply_text(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                             std::string body, std::string content_type, ForwardResult& outcome);
  awaitable<bool> reply_error(beast::tcp_stream& stream, const http::request<http::string_body>& request, errc error,
                              std::string message, ForwardResult& outcome, ExtraHeaders extra = {});
  bool keep_alive_for(const http::request<http::string_body>& request) const;
  awaitable<bool> route_admin(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                              std::string_view path, const net::ip::address& peer, ForwardResult& outcome);

  net::io_context& io_;
  const Config& config_;
  Registry& registry_;
  ServerServices services_;
  ActiveRelays active_relays_;  // declared before forward_, which points at it
  ForwardContext forward_;
  tcp::acceptor acceptor_;
  bool accepting_ = false;
  bool shutting_down_ = false;
  std::size_t requests_in_flight_ = 0;
  std::uint64_t next_session_id_ = 0;
  std::unordered_map<std::uint64_t, Session> sessions_;
};

}  // namespace coordinator
