#include "coordinator/http_server.hpp"

#include <spdlog/spdlog.h>

#include "coordinator/errors.hpp"
#include "coordinator/field_lookup.hpp"
#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

constexpr std::size_t kHeaderLimit = 64 * 1024;
// Children (uvicorn) refuse far fewer; refusing here keeps them from being blamed.
constexpr std::size_t kMaxFields = 100;
constexpr auto kBodyReadTimeout = std::chrono::seconds(120);
// A named object: g++ 12 cannot hold a braced list across a co_await.
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
const ExtraHeaders kCloseConnection{{"Connection", "close"}};

// Why a request is refused before it reaches a route (sent, then the
// connection is closed). No message: nothing is sent, the client left or timed out.
struct Refusal {
  errc error = errc::bad_request;
  std::string message;
};

Refusal body_too_large(std::uint64_t max_body) {
  return {errc::body_too_large, "Request body is larger than " + std::to_string(max_body) + " bytes."};
}

Refusal header_block_refusal(const HeaderBlockCheck& block, std::size_t buffered) {
  if (block.problem == HeaderBlockCheck::Problem::too_many_fields || (!block.complete && buffered > kHeaderLimit)) {
    return {errc::headers_too_large,
            "Request headers are larger than 64 KiB or more than " + std::to_string(kMaxFields) + " fields."};
  }
  if (block.problem == HeaderBlockCheck::Problem::obs_fold) {
    return {errc::bad_request, "Malformed HTTP request: folded header lines (obs-fold) are not accepted."};
  }
  if (block.problem != HeaderBlockCheck::Problem::none) {
    return {errc::bad_request, "Malformed HTTP request: lines must end with CRLF."};
  }
  return {};
}

Refusal header_read_refusal(const error_code& ec, std::uint64_t max_body) {
  if (ec == http::error::header_limit) return {errc::headers_too_large, "Request headers are larger than 64 KiB."};
  if (ec == http::error::body_limit) return body_too_large(max_body);
  if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == net::error::operation_aborted) {
    return {};
  }
  return {errc::bad_request, "Malformed HTTP request: " + ec.message() + "."};
}

Refusal head_refusal(const http::request_parser<http::string_body>& parser, std::uint64_t max_body) {
  // RFC 9112 6.3: a Transfer-Encoding that does not end in chunked leaves the
  // body's length unknown; reading on would let the body pass as a request.
  if (!parser.chunked() && has_field(parser.get(), http::field::transfer_encoding)) {
    return {errc::bad_request, "Malformed HTTP request: Transfer-Encoding must end with chunked."};
  }
  if (const auto length = parser.content_length(); length && *length > max_body) return body_too_large(max_body);
  return {};
}

Refusal body_read_refusal(const error_code& ec, std::uint64_t max_body) {
  if (ec == http::error::body_limit) return body_too_large(max_body);
  if (ec == beast::error::timeout || ec == net::error::eof || ec == http::error::partial_message ||
      ec == net::error::connection_reset) {
    return {};
  }
  return {errc::bad_request, "Malformed HTTP request body: " + ec.message() + "."};
}

// Chunked trailer fields are not headers (RFC 9110 6.5.1): drop them.
void drop_trailers(Request& request, std::size_t header_fields) {
  if (static_cast<std::size_t>(std::distance(request.begin(), request.end())) <= header_fields) return;
  auto first_trailer = request.begin();
  std::advance(first_trailer, static_cast<std::ptrdiff_t>(header_fields));
  while (first_trailer != request.end()) first_trailer = request.erase(first_trailer);
}

// Feeds the parser what `buffer` holds, up to the end of the head (or of the
// message, once eager). Needing more bytes is not an error.
error_code put_buffered(http::request_parser<http::string_body>& parser, beast::flat_buffer& buffer) {
  error_code ec;
  while (buffer.size() > 0 && !parser.is_done() && !(parser.is_header_done() && !parser.eager())) {
    const std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == http::error::need_more) return {};
    if (ec || used == 0) break;
  }
  return ec;
}

struct ParsedRequest {
  std::optional<Request> request;
  Refusal refusal;  // when there is no request
};

// Header block, head, 100-continue, body: each step bounded and checked.
awaitable<ParsedRequest> parse_request(TcpStream& stream, beast::flat_buffer& buffer, const Config& config) {
  ParsedRequest parsed;
  // Read the whole header block and look at its raw bytes first: Beast
  // tolerates shapes (obs-fold) that a proxy must refuse.
  // (A loop here, not a coroutine of its own: one frame less per request.)
  stream.expires_after(config.header_timeout);
  HeaderBlockCheck block;
  error_code ec;
  while (true) {
    const auto data = buffer.cdata();
    block = check_header_block(std::string_view(static_cast<const char*>(data.data()), data.size()), kMaxFields);
    if (block.complete || block.problem != HeaderBlockCheck::Problem::none || buffer.size() > kHeaderLimit) {
      break;
    }
    const std::size_t n = co_await stream.async_read_some(buffer.prepare(4096), use_awaitable_ec(ec));
    buffer.commit(n);
    if (ec) {
      co_return parsed;
    }
  }
  parsed.refusal = header_block_refusal(block, buffer.size());
  if (!parsed.refusal.message.empty()) {
    co_return parsed;
  }
  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(config.max_body);
  // The header block is whole in the buffer by now: parsed without an asynchronous read.
  ec = put_buffered(parser, buffer);
  if (ec) {
    parsed.refusal = header_read_refusal(ec, config.max_body);
    co_return parsed;
  }
  parsed.refusal = head_refusal(parser, config.max_body);
  if (!parsed.refusal.message.empty()) {
    co_return parsed;
  }
  const auto& head = parser.get();
  const std::size_t header_fields = static_cast<std::size_t>(std::distance(head.begin(), head.end()));
  if (!parser.is_done() && iequals(field_value(head, http::field::expect), "100-continue")) {
    stream.expires_after(config.client_send_timeout);
    co_await net::async_write(stream, net::buffer(kContinue.data(), kContinue.size()), use_awaitable_ec(ec));
    if (ec) {
      co_return parsed;
    }
  }
  // Most bodies came with the head: what is buffered is parsed first, and
  // only a body still on its way is read.
  parser.eager(true);
  ec = put_buffered(parser, buffer);
  if (!ec && !parser.is_done()) {
    stream.expires_after(kBodyReadTimeout);
    co_await http::async_read(stream, buffer, parser, use_awaitable_ec(ec));
  }
  if (ec) {
    parsed.refusal = body_read_refusal(ec, config.max_body);
    co_return parsed;
  }
  parsed.request = parser.release();
  drop_trailers(*parsed.request, header_fields);
  co_return parsed;
}

// A request refused before it reaches a route; the connection is closed after.
awaitable<void> refuse(const Replies& replies, TcpStream& stream, Refusal refusal, ForwardResult& outcome) {
  const Request bad_request{http::verb::get, "/", 11};
  const Exchange exchange{stream, bad_request, net::ip::address(), {}, outcome};
  co_await replies.reply_error(exchange, refusal.error, std::move(refusal.message), kCloseConnection);
}

// Every request carries an id: the client's if well formed, else a new one.
void give_request_id(Request& request) {
  if (!is_valid_request_id(request_id_of(request))) {
    request.set(kRequestIdField, new_request_id().view());
  }
}

}  // namespace

HttpServer::HttpServer(net::io_context& io, const Config& config, ServerServices services)
    : io_(io),
      config_(config),
      replies_(config, state_),
      router_(io, config, std::move(services), replies_, state_),
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
  state_.shutting_down = true;
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
    Socket socket = co_await acceptor_.async_accept(use_awaitable_ec(ec));
    if (ec) {
      if (!accepting_) break;
      // Out of file descriptors and the like: keep serving the connections we have.
      spdlog::warn("accept failed: {}", ec.message());
      SteadyTimer pause(io_, std::chrono::milliseconds(50));
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
      socket.shutdown(Socket::shutdown_both, ignored);
      socket.close(ignored);
      continue;
    }
    net::co_spawn(io_, run_session(std::move(socket)), LogEscapedException{"client session"});
  }
}

awaitable<void> HttpServer::run_session(Socket socket) {
  set_no_delay(socket);
  // The peer's address, read once: X-Forwarded-For and the admin check need it on every request.
  error_code peer_ec;
  const net::ip::address peer = socket.remote_endpoint(peer_ec).address();
  const std::string peer_text = peer.is_unspecified() ? std::string() : peer.to_string();
  TcpStream stream(std::move(socket));
  beast::flat_buffer buffer;
  const std::uint64_t id = next_session_id_++;
  // A reference stays valid while other sessions come and go (unordered_map).
  Session& session = sessions_[id] = Session{&stream, false};
  // Leaves the bookkeeping right even if something below throws.
  struct SessionScope {
    HttpServer& server;
    std::uint64_t id;
    ~SessionScope() { server.sessions_.erase(id); }
  } session_scope{*this, id};
  ForwardResult outcome;

  while (!state_.shutting_down) {
    session.busy = false;
    if (buffer.size() == 0) {
      // Idle keep-alive wait, separate from the (shorter) header deadline.
      error_code ec;
      stream.expires_after(config_.keep_alive_timeout);
      const std::size_t n = co_await stream.async_read_some(buffer.prepare(4096), use_awaitable_ec(ec));
      buffer.commit(n);
      if (ec) {
        break;
      }
    }
    session.busy = true;
    outcome = ForwardResult{};
    // Read here, not in a coroutine of its own: one frame less per request.
    ParsedRequest parsed = co_await parse_request(stream, buffer, config_);
    if (!parsed.refusal.message.empty()) {
      co_await refuse(replies_, stream, std::move(parsed.refusal), outcome);
      break;
    }
    if (!parsed.request) {
      break;
    }
    Request& request = *parsed.request;
    give_request_id(request);
    const Exchange exchange{stream, request, peer, peer_text, outcome};
    const bool keep_going = co_await serve_request(exchange);
    if (!keep_going) {
      break;
    }
  }
  error_code ignored;
  stream.socket().shutdown(Socket::shutdown_send, ignored);
  stream.socket().close(ignored);
}

awaitable<bool> HttpServer::serve_request(Exchange exchange) {
  const auto started = Clock::now();
  struct InFlight {
    std::size_t& count;
    explicit InFlight(std::size_t& c) : count(c) { ++count; }
    ~InFlight() { --count; }
  };
  bool keep_going = false;
  {
    InFlight in_flight(state_.requests_in_flight);
    keep_going = co_await router_.route(exchange);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const Request& request = exchange.request;
  const ForwardResult& outcome = exchange.outcome;
  const std::string_view path = path_of(request.target());
  router_.metrics().observe_request(Metrics::route_of(path), outcome.status, outcome.child, seconds);
  if (outcome.stream_ttfb >= 0) router_.metrics().observe_stream_ttfb(outcome.stream_ttfb);
  router_.count_usage(request, outcome);
  log_access(request.method_string(), path, outcome.status, outcome.child, seconds, outcome.bytes_sent,
             request_id_of(request));
  co_return keep_going;
}

}  // namespace coordinator
