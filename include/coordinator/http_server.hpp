#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/relay.hpp"
#include "coordinator/routes.hpp"

namespace coordinator {

// The client-facing HTTP/1.1 server: accepts, reads and checks each request,
// hands it to the router (src/routes.cpp), and keeps the connection alive.
class HttpServer {
 public:
  HttpServer(net::io_context& io, const Config& config, ServerServices services);

  // Binds and listens; returns a one-line error on failure.
  std::string listen();
  void start();

  // Graceful shutdown: no new connections; idle keep-alive connections are
  // closed; busy ones close after their current answer.
  void stop_accepting();
  std::size_t requests_in_flight() const { return state_.requests_in_flight; }
  void close_all_connections();
  // A child's log showed a quota hit: cool it down, send its unserved attempts elsewhere.
  void note_child_quota(std::size_t child) { router_.note_child_quota(child); }

 private:
  struct Session {
    TcpStream* stream = nullptr;
    bool busy = false;
  };

  awaitable<void> accept_loop();
  awaitable<void> run_session(Socket socket);
  // Routes one request and logs it; returns whether the connection goes on.
  awaitable<bool> serve_request(Exchange exchange);

  net::io_context& io_;
  const Config& config_;
  ServerState state_;
  Replies replies_;
  Router router_;
  Acceptor acceptor_;
  bool accepting_ = false;
  std::uint64_t next_session_id_ = 0;
  std::unordered_map<std::uint64_t, Session> sessions_;
};

}  // namespace coordinator
