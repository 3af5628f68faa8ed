#include "coordinator/http_server.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "coordinator/child_client.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/json_check.hpp"
#include "coordinator/responses.hpp"
#include "coordinator/status_page.hpp"

namespace coordinator {

namespace {

constexpr std::size_t kHeaderLimit = 64 * 1024;
// Children (uvicorn) refuse far fewer; refusing here keeps them from being blamed.
constexpr std::size_t kMaxFields = 100;
constexpr std::string_view kCancelPrefix = "/v1/cancel/";
constexpr auto kBodyReadTimeout = std::chrono::seconds(120);
// A named object: g++ 12 cannot hold a braced list across a co_await.
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
const ExtraHeaders kCloseConnection{{"Connection", "close"}};
const ExtraHeaders kAskForBearer{{"WWW-Authenticate", "Bearer"}};
const ExtraHeaders kAllowGet{{"Allow", "GET"}};
const ExtraHeaders kAllowPost{{"Allow", "POST"}};

// Empty when the peer's address could not be read (it is then unspecified).
std::string address_text(const net::ip::address& address) {
  return address.is_unspecified() ? std::string() : address.to_string();
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

struct CancelBroadcast {
  explicit CancelBroadcast(net::any_io_executor executor, std::size_t children)
      : answers(children, 0), pending(children), all_answered(executor) {}
  std::vector<unsigned> answers;  // 0: no answer
  std::size_t pending;
  net::steady_timer all_answered;
};

awaitable<void> cancel_one(std::shared_ptr<CancelBroadcast> broadcast, std::size_t index, std::string name,
                           std::string host, int port, std::string req_id, Clock::duration timeout, ExtraHeaders auth) {
  broadcast->answers[index] =
      co_await cancel_on_child(std::move(name), std::move(host), port, std::move(req_id), timeout, std::move(auth));
  if (--broadcast->pending == 0) broadcast->all_answered.cancel();
}

}  // namespace

namespace {

nlohmann::json children_array(const Registry& registry, Clock::time_point now) {
  nlohmann::json children = nlohmann::json::array();
  for (const Child& child : registry.children()) {
    children.push_back({
        {"name", child.name},
        {"state", to_string(child.state)},
        {"ports", {{"api", child.ports.api}, {"stream", child.ports.stream}, {"camoufox", child.ports.camoufox}}},
        {"pid", child.pid},
        {"in_flight", child.in_flight},
        {"served", child.served},
        {"failures", child.failures},
        {"restarts", child.restarts},
        {"ejections", child.ejections},
        {"last_error", child.last_error},
        {"seconds_in_state", std::chrono::duration<double>(now - child.state_since).count()},
    });
    if (child.attached) children.back()["url"] = "http://" + child.host + ":" + std::to_string(child.ports.api);
  }
  return children;
}

}  // namespace

std::string children_json(const Registry& registry, Clock::time_point now) {
  return dump_json(children_array(registry, now));
}

std::string readiness_body(const Registry& registry, Clock::time_point now, const std::string& extra_json) {
  const bool ready = registry.serving_count() > 0;
  nlohmann::json body = {
      {"status", ready ? "ready" : "degraded"},
      {"ready_children", registry.names_serving(true)},
      {"unhealthy_children", registry.names_serving(false)},
      {"total_children", registry.size()},
      {"children", children_array(registry, now)},
  };
  if (!extra_json.empty()) {
    const auto extra = nlohmann::json::parse(extra_json, nullptr, false);
    if (extra.is_object()) body.update(extra);
  }
  return dump_json(body);
}

HttpServer::HttpServer(net::io_context& io, const Config& config, ServerServices services)
    : io_(io),
      config_(config),
      registry_(services.registry),
      services_(std::move(services)),
      forward_{config,         services_.registry, services_.dispatcher,
               services_.pool, services_.recycle,  &services_.metrics,
               &active_relays_},
      acceptor_(io) {}

std::string HttpServer::listen() {
  error_code ec;
  const auto address = net::ip::make_address(config_.host, ec);
  if (ec) return "--coordinator-host " + config_.host + " is not an IP address";
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(config_.port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return "cannot listen on " + config_.host + ":" + std::to_string(config_.port) + ": " + ec.message();
  return {};
}

void HttpServer::start() {
  accepting_ = true;
  net::co_spawn(io_, accept_loop(), LogEscapedException{"accept loop"});
}

void HttpServer::stop_accepting() {
  shutting_down_ = true;
  accepting_ = false;
  error_code ignored;
  acceptor_.close(ignored);
  for (auto& [id, session] : sessions_) {
    if (!session.busy) session.stream->socket().close(ignored);
  }
}

void HttpServer::close_all_connections() {
  error_code ignored;
  for (auto& [id, session] : sessions_) session.stream->socket().close(ignored);
}

awaitable<void> HttpServer::accept_loop() {
  while (accepting_) {
    error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(use_awaitable_ec(ec));
    if (ec) {
      if (!accepting_) break;
      // Out of file descriptors and the like: keep serving the connections we have.
      spdlog::warn("accept failed: {}", ec.message());
      net::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(use_awaitable_ec(ec));
      continue;
    }
    if (sessions_.size() >= config_.max_connections) {
      // Refused cleanly: a complete 503, then the connection is closed.
      static const std::string kFull =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nRetry-After: 5\r\nContent-Length: " +
          std::to_string(error_body(errc::too_many_connections, "Too many connections.").size()) + "\r\n\r\n" +
          error_body(errc::too_many_connections, "Too many connections.");
      error_code ignored;
      socket.non_blocking(true, ignored);
      socket.send(net::buffer(kFull), 0, ignored);
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      continue;
    }
    net::co_spawn(io_, run_session(std::move(socket)), LogEscapedException{"client session"});
  }
}

bool HttpServer::keep_alive_for(const http::request<http::string_body>& request) const {
  return request.keep_alive() && !shutting_down_;
}

awaitable<void> HttpServer::run_session(tcp::socket socket) {
  set_no_delay(socket);
  // The peer's address, read once: X-Forwarded-For and the admin check need it on every request.
  error_code peer_ec;
  const net::ip::address peer = socket.remote_endpoint(peer_ec).address();
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  const std::uint64_t id = next_session_id_++;
  sessions_[id] = Session{&stream, false};
  // Leaves the bookkeeping right even if something below throws.
  struct SessionScope {
    HttpServer& server;
    std::uint64_t id;
    ~SessionScope() { server.sessions_.erase(id); }
  } session_scope{*this, id};
  ForwardResult outcome;

  while (!shutting_down_) {
    error_code ec;
    sessions_[id].busy = false;
    if (buffer.size() == 0) {
      // Idle keep-alive wait, separate from the (shorter) header deadline.
      stream.expires_after(to_duration(config_.keep_alive_timeout));
      const std::size_t n = co_await stream.async_read_some(buffer.prepare(4096), use_awaitable_ec(ec));
      buffer.commit(n);
      if (ec) break;
    }
    sessions_[id].busy = true;
    outcome = ForwardResult{};
    const http::request<http::string_body> bad_request{http::verb::get, "/", 11};
    // Read the whole header block and look at its raw bytes first: Beast
    // tolerates shapes (obs-fold) that a proxy must refuse.
    stream.expires_after(to_duration(config_.header_timeout));
    HeaderBlockCheck block;
    while (true) {
      const auto data = buffer.cdata();
      block = check_header_block(std::string_view(static_cast<const char*>(data.data()), data.size()), kMaxFields);
      if (block.complete || block.problem != HeaderBlockCheck::Problem::none || buffer.size() > kHeaderLimit) break;
      const std::size_t n = co_await stream.async_read_some(buffer.prepare(4096), use_awaitable_ec(ec));
      buffer.commit(n);
      if (ec) break;
    }
    if (ec) break;
    if (block.problem == HeaderBlockCheck::Problem::too_many_fields ||
        (!block.complete && buffer.size() > kHeaderLimit)) {
      co_await reply_error(
          stream, bad_request, errc::headers_too_large,
          "Request headers are larger than 64 KiB or more than " + std::to_string(kMaxFields) + " fields.", outcome,
          kCloseConnection);
      break;
    }
    if (block.problem != HeaderBlockCheck::Problem::none) {
      co_await reply_error(stream, bad_request, errc::bad_request,
                           block.problem == HeaderBlockCheck::Problem::obs_fold
                               ? "Malformed HTTP request: folded header lines (obs-fold) are not accepted."
                               : "Malformed HTTP request: lines must end with CRLF.",
                           outcome, kCloseConnection);
      break;
    }
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(config_.max_body);
    co_await http::async_read_header(stream, buffer, parser, use_awaitable_ec(ec));
    if (ec == http::error::header_limit) {
      co_await reply_error(stream, bad_request, errc::headers_too_large, "Request headers are larger than 64 KiB.",
                           outcome, kCloseConnection);
      break;
    }
    if (ec == http::error::body_limit) {
      co_await reply_error(stream, bad_request, errc::body_too_large,
                           "Request body is larger than " + std::to_string(config_.max_body) + " bytes.", outcome,
                           kCloseConnection);
      break;
    }
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      break;
    }
    if (ec) {
      co_await reply_error(stream, bad_request, errc::bad_request, "Malformed HTTP request: " + ec.message() + ".",
                           outcome, kCloseConnection);
      break;
    }
    const auto& head = parser.get();
    // RFC 9112 6.3: a Transfer-Encoding that does not end in chunked leaves the
    // body's length unknown; reading on would let the body pass as a request.
    if (head.count(http::field::transfer_encoding) > 0 && !parser.chunked()) {
      co_await reply_error(stream, bad_request, errc::bad_request,
                           "Malformed HTTP request: Transfer-Encoding must end with chunked.", outcome,
                           kCloseConnection);
      break;
    }
    const std::size_t header_fields = static_cast<std::size_t>(std::distance(head.begin(), head.end()));
    if (const auto length = parser.content_length(); length && *length > config_.max_body) {
      co_await reply_error(stream, bad_request, errc::body_too_large,
                           "Request body is larger than " + std::to_string(config_.max_body) + " bytes.", outcome,
                           kCloseConnection);
      break;
    }
    if (iequals(head[http::field::expect], "100-continue") && !parser.is_done()) {
      stream.expires_after(to_duration(config_.client_send_timeout));
      co_await net::async_write(stream, net::buffer(kContinue.data(), kContinue.size()), use_awaitable_ec(ec));
      if (ec) break;
    }
    stream.expires_after(kBodyReadTimeout);
    co_await http::async_read(stream, buffer, parser, use_awaitable_ec(ec));
    if (ec == http::error::body_limit) {
      co_await reply_error(stream, bad_request, errc::body_too_large,
                           "Request body is larger than " + std::to_string(config_.max_body) + " bytes.", outcome,
                           kCloseConnection);
      break;
    }
    if (ec) {
      if (ec != beast::error::timeout && ec != net::error::eof && ec != http::error::partial_message &&
          ec != net::error::connection_reset) {
        co_await reply_error(stream, bad_request, errc::bad_request,
                             "Malformed HTTP request body: " + ec.message() + ".", outcome, kCloseConnection);
      }
      break;
    }
    http::request<http::string_body> request = parser.release();
    // Chunked trailer fields are not headers (RFC 9110 6.5.1): drop them.
    if (static_cast<std::size_t>(std::distance(request.begin(), request.end())) > header_fields) {
      auto first_trailer = request.begin();
      std::advance(first_trailer, static_cast<std::ptrdiff_t>(header_fields));
      while (first_trailer != request.end()) first_trailer = request.erase(first_trailer);
    }
    // Every request carries an id: the client's if well formed, else a new one.
    if (!is_valid_request_id(request["X-Request-Id"])) request.set("X-Request-Id", new_request_id());
    const auto started = Clock::now();
    struct InFlight {
      std::size_t& count;
      explicit InFlight(std::size_t& c) : count(c) { ++count; }
      ~InFlight() { --count; }
    };
    bool keep_going = false;
    {
      InFlight in_flight(requests_in_flight_);
      keep_going = co_await route(stream, request, peer, outcome);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    const std::string_view path = path_of(request.target());
    services_.metrics.observe_request(Metrics::route_of(path), outcome.status, outcome.child, seconds);
    if (outcome.stream_ttfb >= 0) services_.metrics.observe_stream_ttfb(outcome.stream_ttfb);
    log_access(request.method_string(), path, outcome.status, outcome.child, seconds, outcome.bytes_sent,
               request["X-Request-Id"]);
    if (!keep_going) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.socket().close(ignored);
}

awaitable<bool> HttpServer::reply(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                                  unsigned status, std::string body, ForwardResult& outcome, ExtraHeaders extra) {
  bool keep_alive = keep_alive_for(request);
  for (const auto& [name, value] : extra) {
    if (iequals(name, "Connection") && iequals(value, "close")) keep_alive = false;
  }
  outcome.status = status;
  outcome.bytes_sent = body.size();
  ExtraHeaders headers;
  for (const auto& header : extra) {
    if (!iequals(header.first, "Connection")) headers.push_back(header);
  }
  if (const std::string_view id = request["X-Request-Id"]; !id.empty()) headers.emplace_back("X-Request-Id", id);
  const bool sent =
      co_await send_json(stream, request.version(), status, std::move(body), keep_alive,
                         to_duration(config_.client_send_timeout), headers, request.method() == http::verb::head);
  co_return sent&& keep_alive;
}

awaitable<bool> HttpServer::reply_text(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                                       std::string body, std::string content_type, ForwardResult& outcome) {
  const bool head_only = request.method() == http::verb::head;
  const bool keep_alive = keep_alive_for(request);
  outcome.status = 200;
  outcome.bytes_sent = head_only ? 0 : body.size();
  ExtraHeaders extra;
  if (const std::string_view id = request["X-Request-Id"]; !id.empty()) extra.emplace_back("X-Request-Id", id);
  const bool sent = co_await send_text(stream, request.version(), 200, std::move(body), std::move(content_type),
                                       keep_alive, to_duration(config_.client_send_timeout), head_only, extra);
  co_return sent&& keep_alive;
}

awaitable<bool> HttpServer::reply_error(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                                        errc error, std::string message, ForwardResult& outcome, ExtraHeaders extra) {
  const ErrorSpec& spec = spec_of(error);
  if (spec.retry_after > 0) extra.emplace_back("Retry-After", std::to_string(spec.retry_after));
  co_return co_await reply(stream, request, spec.status, error_body(error, message), outcome, std::move(extra));
}

awaitable<bool> HttpServer::route(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                                  const net::ip::address& peer, ForwardResult& outcome) {
  const std::string_view path = path_of(request.target());
  const http::verb method = request.method();
  auto wrong_method = [&](std::string allowed) {
    std::string message =
        "Method " + std::string(request.method_string()) + " is not allowed on " + std::string(path) + ".";
    return reply_error(stream, request, errc::method_not_allowed, std::move(message), outcome,
                       ExtraHeaders{{"Allow", std::move(allowed)}});
  };

  // Keys at the edge: /v1/* and /admin/* (and /metrics when asked) need one.
  const bool needs_key =
      path.substr(0, 4) == "/v1/" || path.substr(0, 7) == "/admin/" || (path == "/metrics" && config_.protect_metrics);
  if (needs_key &&
      !services_.api_keys.allows(presented_key(request[http::field::authorization], request["X-API-Key"]))) {
    co_return co_await reply_error(stream, request, errc::invalid_api_key,
                                   "Invalid or missing API key: send Authorization: Bearer KEY or X-API-Key: KEY.",
                                   outcome, kAskForBearer);
  }

  // HEAD is answered like GET, without the body, where the coordinator itself answers.
  const bool get_like = method == http::verb::get || method == http::verb::head;
  if (path == "/live") {
    if (!get_like) co_return co_await wrong_method("GET, HEAD");
    co_return co_await reply(stream, request, 200, std::string(R"({"status":"alive"})"), outcome);
  }
  if (path == "/ready" || path == "/health") {
    if (!get_like) co_return co_await wrong_method("GET, HEAD");
    const unsigned status = registry_.serving_count() > 0 ? 200 : 503;
    // Named locals: g++ 12 destroys a temporary of a ?: inside a co_await statement twice.
    const std::string extra = services_.fleet_extra ? services_.fleet_extra() : std::string{};
    std::string body = readiness_body(registry_, Clock::now(), extra);
    co_return co_await reply(stream, request, status, std::move(body), outcome);
  }
  if (path == "/metrics") {
    if (!get_like) co_return co_await wrong_method("GET, HEAD");
    std::string body = services_.metrics.render(registry_, requests_in_flight_, services_.dispatcher.queued());
    co_return co_await reply_text(stream, request, std::move(body), "text/plain; version=0.0.4; charset=utf-8",
                                  outcome);
  }
  if (path == "/" || path == "/status") {
    if (!get_like) co_return co_await wrong_method("GET, HEAD");
    co_return co_await reply_text(stream, request, std::string(status_page_html()), "text/html; charset=utf-8",
                                  outcome);
  }
  if (path.substr(0, 7) == "/admin/") co_return co_await route_admin(stream, request, path, peer, outcome);
  if (path == "/v1/models") {
    if (method != http::verb::get) co_return co_await wrong_method("GET");
    std::string client_address = address_text(peer);
    outcome = co_await forward_request(forward_, stream, request, false, /*takes_slot=*/false, keep_alive_for(request),
                                       std::move(client_address));
    co_return outcome.client_reusable;
  }
  if (path == "/v1/chat/completions") {
    if (method != http::verb::post) co_return co_await wrong_method("POST");
    const JsonCheck body = check_json(request.body());
    if (!body.is_object) {
      const std::string why = body.valid ? "the body is not a JSON object" : body.error;
      co_return co_await reply_error(stream, request, errc::invalid_json,
                                     "Request body must be a JSON object: " + why + ".", outcome);
    }
    std::string client_address = address_text(peer);
    outcome = co_await forward_request(forward_, stream, request, body.stream_requested, /*takes_slot=*/true,
                                       keep_alive_for(request), std::move(client_address));
    co_return outcome.client_reusable;
  }
  if (path.substr(0, kCancelPrefix.size()) == kCancelPrefix) {
    if (method != http::verb::post) co_return co_await wrong_method("POST");
    const std::string_view req_id = path.substr(kCancelPrefix.size());
    if (!is_valid_req_id(req_id)) {
      co_return co_await reply_error(stream, request, errc::invalid_req_id,
                                     "req_id must be 1-128 letters, digits, '-' or '_'.", outcome);
    }
    co_return co_await broadcast_cancel(stream, request, std::string(req_id), outcome);
  }
  co_return co_await reply_error(stream, request, errc::not_found, "No route for " + std::string(path) + ".", outcome);
}

awaitable<bool> HttpServer::route_admin(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                                        std::string_view path, const net::ip::address& peer, ForwardResult& outcome) {
  if (!config_.admin_remote && !peer.is_loopback()) {
    co_return co_await reply_error(stream, request, errc::admin_not_local,
                                   "The admin API answers loopback clients only (see --admin-remote).", outcome);
  }
  const http::verb method = request.method();
  if (path == "/admin/children") {
    if (method != http::verb::get) {
      co_return co_await reply_error(stream, request, errc::method_not_allowed, "Use GET.", outcome, kAllowGet);
    }
    co_return co_await reply(stream, request, 200, children_json(registry_, Clock::now()), outcome);
  }
  if (method != http::verb::post) {
    co_return co_await reply_error(stream, request, errc::method_not_allowed, "Use POST.", outcome, kAllowPost);
  }
  std::string error;
  std::string action;
  if (path == "/admin/reload") {
    action = "reload";
    error = services_.admin.reload ? services_.admin.reload() : "reload is not available";
  } else {
    // /admin/children/{name}/{restart|drain|undrain}
    constexpr std::string_view kPrefix = "/admin/children/";
    const std::string_view rest = path.substr(0, kPrefix.size()) == kPrefix ? path.substr(kPrefix.size()) : "";
    const auto slash = rest.rfind('/');
    const std::string name(slash == std::string_view::npos ? std::string_view{} : rest.substr(0, slash));
    action = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
    const auto index = registry_.find(name);
    const auto* handler = action == "restart"   ? &services_.admin.restart
                          : action == "drain"   ? &services_.admin.drain
                          : action == "undrain" ? &services_.admin.undrain
                                                : nullptr;
    if (handler == nullptr || name.empty()) {
      co_return co_await reply_error(stream, request, errc::not_found, "No admin route for " + std::string(path) + ".",
                                     outcome);
    }
    if (!index) {
      co_return co_await reply_error(stream, request, errc::unknown_child, "No child named '" + name + "'.", outcome);
    }
    action += " " + name;
    error = *handler ? (*handler)(*index) : "not available in this mode";
  }
  if (!error.empty()) {
    spdlog::warn("admin {} refused: {}", action, error);
    co_return co_await reply_error(stream, request, errc::admin_action_refused, error, outcome);
  }
  spdlog::info("admin {} done (request {})", action, request["X-Request-Id"]);
  nlohmann::json body = {{"success", true}, {"action", action}};
  co_return co_await reply(stream, request, 200, dump_json(body), outcome);
}

awaitable<bool> HttpServer::broadcast_cancel(beast::tcp_stream& stream, const http::request<http::string_body>& request,
                                             std::string req_id, ForwardResult& outcome) {
  // The real child cancels only a request still waiting in its own queue; one
  // in progress stops when its connection closes, which ending our relay does.
  const bool relay_ended = active_relays_.cancel(req_id);
  // A req_id seen in a child's stream goes to that child alone; others to all.
  std::vector<std::size_t> targets;
  if (const auto owner = registry_.owner_of(req_id)) {
    targets.push_back(*owner);
  } else {
    for (std::size_t i = 0; i < registry_.size(); ++i) targets.push_back(i);
  }
  auto broadcast = std::make_shared<CancelBroadcast>(io_.get_executor(), targets.size());
  const auto timeout = to_duration(config_.cancel_timeout);
  for (std::size_t k = 0; k < targets.size(); ++k) {
    const Child& child = registry_.at(targets[k]);
    net::co_spawn(
        io_,
        cancel_one(broadcast, k, child.name, child.host, child.ports.api, req_id, timeout, credentials_of(request)),
        LogEscapedException{"cancel broadcast"});
    services_.metrics.count_cancel();
  }
  // Each cancel is bounded by its own timeout; this wait only collects them.
  broadcast->all_answered.expires_after(timeout + std::chrono::seconds(1));
  while (broadcast->pending > 0) {
    error_code ec;
    co_await broadcast->all_answered.async_wait(use_awaitable_ec(ec));
    if (!ec) break;  // expired
  }
  nlohmann::json completed = nlohmann::json::array();
  nlohmann::json failed = nlohmann::json::array();
  for (std::size_t k = 0; k < targets.size(); ++k) {
    (broadcast->answers[k] == 200 ? completed : failed).push_back(registry_.at(targets[k]).name);
  }
  const bool any = relay_ended || !completed.empty();
  spdlog::info("cancel {}: relay {}; cancelled in the queue of {} of {} children{}", req_id,
               relay_ended ? "ended" : "not found", completed.size(), targets.size(),
               targets.size() == 1 && registry_.size() > 1 ? " (sent to its owner only)" : "");
  const std::string message = relay_ended          ? "The relay of this request was ended; its child stops it."
                              : !completed.empty() ? "The request was taken out of its child's queue."
                                                   : "No request with this req_id is in progress or queued.";
  // `completed`: children whose own queue held it; `failed`: the others.
  nlohmann::json body = {{"success", any},         {"req_id", req_id}, {"relay_ended", relay_ended},
                         {"completed", completed}, {"failed", failed}, {"message", message}};
  co_return co_await reply(stream, request, any ? 200 : 404, dump_json(body), outcome);
}

}  // namespace coordinator
