// Raw client bytes, as the coordinator's listener reads them (the steps of
// HttpServer::read_request in src/http_server.cpp), up to 8 pipelined requests
// on one connection, arriving in pieces of 1-4096 bytes:
//  - check_header_block on the raw bytes until the header block is complete
//    (100 fields at most, 64 KiB): when it accepts a block, Beast must end the
//    header exactly where it said, and no field may hold a CR or LF;
//  - Beast's request_parser<string_body> (header limit 64 KiB, body limit
//    1 MiB) fed with put(); a Transfer-Encoding not ending in chunked is
//    refused; chunked trailer fields are dropped;
//  - on each request that parses, what the coordinator does with it:
//    check_json(body), is_valid_req_id on the path after /v1/cancel/,
//    is_valid_request_id on X-Request-Id (else a new id), presented_key,
//    is_hop_by_hop and connection_lists over every field, the 404/405 error
//    bodies that quote the path (valid JSON required), the access-log line in
//    both formats (the JSON one must parse; the text one must stay one line);
//  - for GET and POST, the request forwarded to a child, built by the relay's
//    own ChildRequest (src/child_request.cpp): it must read back as exactly one
//    request with the same method, target and body, and no hop-by-hop field
//    (no smuggling).
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "coordinator/api_keys.hpp"
#include "coordinator/child_request.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/json_check.hpp"
#include "fuzz_util.hpp"

namespace http = boost::beast::http;
namespace net = boost::asio;
using error_code = boost::system::error_code;

namespace {

constexpr std::size_t kHeaderLimit = 64 * 1024;
constexpr std::size_t kBodyLimit = 1024 * 1024;
constexpr std::size_t kMaxFields = 100;
constexpr std::string_view kCancelPrefix = "/v1/cancel/";

std::ostringstream& log_text() {
  static std::ostringstream text;
  return text;
}

// Bytes arriving on one connection, in pieces.
class Connection {
 public:
  explicit Connection(std::string_view input) : input_(input), pieces_(input) {}

  std::string_view buffered() const { return buffer_; }
  std::string buffered_and_unread() const { return buffer_ + std::string(input_.substr(offset_)); }
  bool exhausted() const { return buffer_.empty() && offset_ >= input_.size(); }

  // One more piece from the socket; false at end of input.
  bool receive() {
    if (offset_ >= input_.size()) return false;
    const std::size_t n = std::min(pieces_.next(), input_.size() - offset_);
    buffer_.append(input_.substr(offset_, n));
    offset_ += n;
    return true;
  }

  // Feeds `parser` until `done(parser)`, a parse error, or the end of input.
  // True when `done` was reached.
  template <class Parser, class Done>
  bool read(Parser& parser, Done done) {
    error_code ec;
    while (!done(parser)) {
      if (buffer_.empty() && !receive()) {
        parser.put_eof(ec);
        return !ec && done(parser);
      }
      const std::size_t used = parser.put(net::buffer(buffer_), ec);
      buffer_.erase(0, used);
      if (ec == http::error::need_more) {
        if (!receive()) {
          parser.put_eof(ec);
          return !ec && done(parser);
        }
        continue;
      }
      if (ec) return false;
    }
    return true;
  }

 private:
  std::string_view input_;
  fuzz::Pieces pieces_;
  std::size_t offset_ = 0;
  std::string buffer_;
};

bool has_line_break(std::string_view text) {
  return text.find('\r') != std::string_view::npos || text.find('\n') != std::string_view::npos;
}

// check_header_block's answer on the bytes it was given.
void check_block(std::string_view bytes, const coordinator::HeaderBlockCheck& block) {
  if (block.complete) {
    FUZZ_CHECK(block.problem == coordinator::HeaderBlockCheck::Problem::none);
    FUZZ_CHECK(block.length >= 4 && block.length <= bytes.size());
    FUZZ_CHECK(bytes.substr(block.length - 4, 4) == "\r\n\r\n");
  }
}

// One request off the connection, as run_session reads it. Empty when the
// server would answer with an error (or just close) and stop.
std::optional<http::request<http::string_body>> read_request(Connection& connection) {
  using Problem = coordinator::HeaderBlockCheck::Problem;
  coordinator::HeaderBlockCheck block;
  while (true) {
    block = coordinator::check_header_block(connection.buffered(), kMaxFields);
    check_block(connection.buffered(), block);
    if (block.complete || block.problem != Problem::none || connection.buffered().size() > kHeaderLimit) break;
    if (!connection.receive()) return std::nullopt;
  }
  if (!block.complete) return std::nullopt;  // 431 or 400

  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(kBodyLimit);
  {
    // Whatever else arrives after the block, a header Beast accepts must end
    // exactly where the check said (else unchecked bytes would be headers).
    const std::string rest = connection.buffered_and_unread();
    http::request_parser<http::string_body> probe;
    probe.header_limit(kHeaderLimit);
    error_code ec;
    const std::size_t used = probe.put(net::buffer(rest), ec);
    if (!ec) FUZZ_CHECK(probe.is_header_done() && used == block.length);
  }
  if (!connection.read(parser, [](const auto& p) { return p.is_header_done(); })) return std::nullopt;
  const auto& head = parser.get();
  // Past the check, no field can carry a line break to the child.
  for (const auto& field : head) {
    FUZZ_CHECK(!has_line_break(field.name_string()) && !has_line_break(field.value()));
  }
  if (head.count(http::field::transfer_encoding) > 0 && !parser.chunked()) return std::nullopt;  // 400
  const auto header_fields = static_cast<std::size_t>(std::distance(head.begin(), head.end()));
  if (!connection.read(parser, [](const auto& p) { return p.is_done(); })) return std::nullopt;
  http::request<http::string_body> request = parser.release();
  // Chunked trailer fields are dropped.
  if (static_cast<std::size_t>(std::distance(request.begin(), request.end())) > header_fields) {
    auto first_trailer = request.begin();
    std::advance(first_trailer, static_cast<std::ptrdiff_t>(header_fields));
    while (first_trailer != request.end()) first_trailer = request.erase(first_trailer);
  }
  return request;
}

void check_error_body(const std::string& message) {
  const std::string body = coordinator::error_body(message, "invalid_request_error", "not_found");
  FUZZ_CHECK(nlohmann::json::accept(body));
}

void check_access_log(std::string_view method, std::string_view path, std::string_view request_id) {
  for (const bool json : {true, false}) {
    coordinator::configure_logging(json);
    log_text().str({});
    coordinator::log_access(method, path, 404, "", 0.001, 123, request_id);
    const std::string line = log_text().str();
    FUZZ_CHECK(!line.empty() && line.back() == '\n');
    FUZZ_CHECK(line.find('\n') == line.size() - 1);  // one line: no forged log lines
    if (json) {
      const std::string_view text(line.data(), line.size() - 1);
      FUZZ_CHECK(nlohmann::json::accept(text));
      const auto record = nlohmann::json::parse(text);
      FUZZ_CHECK(record.contains("message") && record["message"].is_string());
      FUZZ_CHECK(nlohmann::json::accept(record["message"].get<std::string>()));
    }
  }
}

void check_forwarded(const http::request<http::string_body>& request) {
  // The request as the relay sends it to a child (src/child_request.cpp).
  coordinator::ChildRequest upstream(request, "127.0.0.1");
  upstream.address_to("127.0.0.1", 3100);
  std::string wire;
  for (const auto& piece : upstream.buffers()) wire.append(static_cast<const char*>(piece.data()), piece.size());

  // What the child reads: exactly one request, the same one.
  http::request_parser<http::string_body> child;
  child.header_limit(std::numeric_limits<std::uint32_t>::max());
  child.body_limit(std::numeric_limits<std::uint64_t>::max());
  child.eager(true);
  error_code ec;
  std::size_t used = 0;
  while (!child.is_done() && used < wire.size()) {
    const std::size_t n = child.put(net::buffer(wire.data() + used, wire.size() - used), ec);
    used += n;
    if (ec || n == 0) break;
  }
  if (ec) std::fprintf(stderr, "forwarded request does not parse: %s\n", ec.message().c_str());
  FUZZ_CHECK(!ec && child.is_done());
  FUZZ_CHECK(used == wire.size());
  const auto& got = child.get();
  FUZZ_CHECK(got.method() == request.method());
  FUZZ_CHECK(got.target() == request.target());
  FUZZ_CHECK(got.body() == request.body());
  for (const auto& field : got) FUZZ_CHECK(!coordinator::is_hop_by_hop(field.name_string()));
}

void check_request(http::request<http::string_body>& request) {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));

  const auto body = coordinator::check_json(request.body());
  if (!body.valid) FUZZ_CHECK(!body.error.empty());

  if (path.substr(0, kCancelPrefix.size()) == kCancelPrefix) {
    (void)coordinator::is_valid_req_id(path.substr(kCancelPrefix.size()));
  }

  if (!coordinator::is_valid_request_id(request["X-Request-Id"])) {
    request.set("X-Request-Id", coordinator::new_request_id().view());
  }
  FUZZ_CHECK(coordinator::is_valid_request_id(request["X-Request-Id"]));

  if (const auto key = coordinator::presented_key(request[http::field::authorization], request["X-API-Key"])) {
    FUZZ_CHECK(!key->empty());
    (void)coordinator::constant_time_equals(*key, "sk-fuzz-key");
  }

  const std::string_view connection = request[http::field::connection];
  for (const auto& field : request) {
    (void)coordinator::is_hop_by_hop(field.name_string());
    (void)coordinator::connection_lists(connection, field.name_string());
  }

  // The answers that quote the request (src/routes.cpp: Router::route).
  check_error_body("No route for " + std::string(path) + ".");
  check_error_body("Method " + std::string(request.method_string()) + " is not allowed on " + std::string(path) + ".");
  check_access_log(request.method_string(), path, request["X-Request-Id"]);

  if (request.method() == http::verb::get || request.method() == http::verb::post) check_forwarded(request);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(log_text());
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("fuzz", sink));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Connection connection(fuzz::as_view(data, size));
  for (int pipelined = 0; pipelined < 8 && !connection.exhausted(); ++pipelined) {
    auto request = read_request(connection);
    if (!request) break;
    check_request(*request);
    if (!request->keep_alive()) break;
  }
  return 0;
}
