// Raw bytes as if from a child, read the two ways the coordinator reads them:
//  - the relay (src/relay.cpp): response_parser<buffer_body>, header limit
//    64 KiB, no body limit, body pieces into a small buffer (chunked, SSE or
//    length-framed); the first 8 KiB of the body go through extract_req_id as
//    in Relay::note_upstream_bytes; the head the client gets is built as
//    Relay::write_head does (mirrored: it is private) with is_hop_by_hop and
//    connection_lists over every field, serialized, and must read back as one
//    well-formed head;
//  - the health checker (src/upstream.cpp simple_request): response_parser
//    <string_body>, body limit 1 MiB, then judge_health(status, body).
#include <boost/beast/http.hpp>
#include <sstream>

#include "coordinator/child_answers.hpp"
#include "coordinator/health_checker.hpp"
#include "coordinator/http_util.hpp"
#include "fuzz_util.hpp"

namespace http = boost::beast::http;
namespace net = boost::asio;
using error_code = boost::system::error_code;

namespace {

constexpr std::size_t kHeaderLimit = 64 * 1024;
constexpr std::size_t kReqIdScanBytes = 8 * 1024;

// Bytes arriving from the child, in pieces (see fuzz_http_request.cpp).
class Upstream {
 public:
  explicit Upstream(std::string_view input) : input_(input), pieces_(input) {}

  // One put() round, as http::async_read_some: false at end of input (after
  // put_eof) or on a parse error (in `ec`).
  template <class Parser>
  bool read_some(Parser& parser, error_code& ec) {
    ec = {};
    if (buffer_.empty() && !receive()) {
      parser.put_eof(ec);
      return false;
    }
    const std::size_t used = parser.put(net::buffer(buffer_), ec);
    buffer_.erase(0, used);
    if (ec == http::error::need_more) {
      ec = {};
      if (!receive()) {
        parser.put_eof(ec);
        return false;
      }
    }
    if (ec == http::error::need_buffer) ec = {};
    return !ec;
  }

 private:
  bool receive() {
    if (offset_ >= input_.size()) return false;
    const std::size_t n = std::min(pieces_.next(), input_.size() - offset_);
    buffer_.append(input_.substr(offset_, n));
    offset_ += n;
    return true;
  }

  std::string_view input_;
  fuzz::Pieces pieces_;
  std::size_t offset_ = 0;
  std::string buffer_;
};

bool is_event_stream(std::string_view content_type) {
  return content_type.substr(0, std::min<std::size_t>(content_type.size(), 17)) == "text/event-stream";
}

// Relay::write_head for a child's head (client speaks HTTP/1.1, keep-alive).
void check_client_head(const http::response<http::buffer_body>& upstream_head) {
  http::response<http::empty_body> head;
  head.result(upstream_head.result_int());
  head.version(11);
  const std::string_view connection = upstream_head[http::field::connection];
  for (const auto& field : upstream_head) {
    const std::string_view name = field.name_string();
    if (coordinator::is_hop_by_hop(name) || coordinator::iequals(name, "content-length") ||
        coordinator::connection_lists(connection, name)) {
      continue;
    }
    head.insert(name, field.value());
  }
  head.set(http::field::server, "coordinator");
  head.set("X-Request-Id", "0123456789abcdef");
  // content_length_of: digits only, else chunked to the client.
  std::optional<std::uint64_t> length;
  const auto status = upstream_head.result_int();
  if (!upstream_head.chunked()) {
    if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
      length = 0;
    } else if (const std::string_view value = upstream_head[http::field::content_length]; !value.empty()) {
      std::uint64_t parsed = 0;
      bool digits = true;
      for (char c : value) {
        if (c < '0' || c > '9') {
          digits = false;
          break;
        }
        parsed = parsed * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (digits) length = parsed;
    }
  }
  if (length) {
    head.content_length(*length);
  } else {
    head.chunked(true);
  }
  head.keep_alive(true);
  if (is_event_stream(head[http::field::content_type])) head.set(http::field::cache_control, "no-cache");

  std::ostringstream out;
  out << head;
  const std::string wire = out.str();
  // The client reads back one head with the framing the relay chose.
  http::response_parser<http::empty_body> client;
  client.header_limit(std::numeric_limits<std::uint32_t>::max());
  client.skip(true);  // the body follows separately
  error_code ec;
  const std::size_t used = client.put(net::buffer(wire), ec);
  if (ec) std::fprintf(stderr, "head sent to the client does not parse: %s\n", ec.message().c_str());
  FUZZ_CHECK(!ec && client.is_header_done());
  // Written whole, an empty chunked message also carries its last chunk.
  FUZZ_CHECK(wire.substr(used) == (length ? "" : "0\r\n\r\n"));
  FUZZ_CHECK(client.get().result_int() == status);
  FUZZ_CHECK(client.chunked() == !length.has_value());
  if (length) FUZZ_CHECK(client.content_length() && *client.content_length() == *length);
}

void relay_read(std::string_view input) {
  Upstream upstream(input);
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  parser.header_limit(kHeaderLimit);
  error_code ec;
  while (!parser.is_header_done()) {
    if (!upstream.read_some(parser, ec)) break;
  }
  if (ec || !parser.is_header_done()) return;
  auto& response = parser.get();
  check_client_head(response);

  // The body, in pieces of a small buffer (64 KiB in the relay: smaller here so
  // that chunk and event boundaries fall anywhere).
  std::array<char, 1024> chunk{};
  std::string scanned;
  std::optional<std::string> req_id;
  std::size_t rounds = 0;
  while (!parser.is_done() && rounds++ < 100000) {
    response.body().data = chunk.data();
    response.body().size = chunk.size();
    const bool more = upstream.read_some(parser, ec);
    const std::size_t received = chunk.size() - response.body().size;
    FUZZ_CHECK(received <= chunk.size());
    if (received > 0 && !req_id && scanned.size() < kReqIdScanBytes) {
      const std::string_view bytes(chunk.data(), received);
      scanned.append(bytes.substr(0, kReqIdScanBytes - scanned.size()));
      req_id = coordinator::extract_req_id(scanned);
      if (req_id) FUZZ_CHECK(coordinator::is_valid_req_id(*req_id));
    }
    if (!more) break;
  }
}

void health_read(std::string_view input) {
  Upstream upstream(input);
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024 * 1024);
  error_code ec;
  while (!parser.is_done()) {
    if (!upstream.read_some(parser, ec)) break;
  }
  if (ec || !parser.is_done()) return;
  const auto& response = parser.get();
  const auto verdict = coordinator::judge_health(response.result_int(), response.body());
  if (verdict.healthy) {
    FUZZ_CHECK(response.result_int() == 200 && verdict.error.empty());
  } else {
    FUZZ_CHECK(!verdict.error.empty() && verdict.queue_length == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fuzz::as_view(data, size);
  relay_read(input);
  health_read(input);
  // The health body alone, whatever the framing: judge_health must not throw.
  const auto verdict = coordinator::judge_health(200, input);
  if (!verdict.healthy) FUZZ_CHECK(!verdict.error.empty());
  return 0;
}
