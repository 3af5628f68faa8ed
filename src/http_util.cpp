#include "coordinator/http_util.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>

namespace coordinator {

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  nlohmann::json body = {{"error", {{"message", message}, {"type", type}, {"code", code}}}};
  return body.dump();
}

std::string stream_abort_events(std::string_view message) {
  return "data: " + error_body(message, "upstream_error", "child_stream_aborted") + "\n\ndata: [DONE]\n\n";
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool is_hop_by_hop(std::string_view field_name) {
  static constexpr std::array<std::string_view, 9> kHopByHop{
      "connection", "keep-alive",          "proxy-connection",  "te", "trailer", "transfer-encoding",
      "upgrade",    "proxy-authorization", "proxy-authenticate"};
  return std::any_of(kHopByHop.begin(), kHopByHop.end(),
                     [&](std::string_view hop) { return iequals(hop, field_name); });
}

bool connection_lists(std::string_view connection_value, std::string_view field_name) {
  std::size_t start = 0;
  while (start <= connection_value.size()) {
    std::size_t end = connection_value.find(',', start);
    if (end == std::string_view::npos) end = connection_value.size();
    std::string_view token = connection_value.substr(start, end - start);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (iequals(token, field_name)) return true;
    start = end + 1;
  }
  return false;
}

namespace {
bool is_req_id_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}
}  // namespace

bool is_valid_req_id(std::string_view req_id) {
  return !req_id.empty() && req_id.size() <= 128 && std::all_of(req_id.begin(), req_id.end(), is_req_id_char);
}

std::optional<std::string> extract_req_id(std::string_view sse_bytes) {
  static constexpr std::string_view kMarker = "\"id\":\"chatcmpl-";
  static constexpr std::string_view kSpacedMarker = "\"id\": \"chatcmpl-";
  std::size_t at = sse_bytes.find(kMarker);
  std::size_t skip = kMarker.size();
  if (const std::size_t spaced = sse_bytes.find(kSpacedMarker); spaced < at) {
    at = spaced;
    skip = kSpacedMarker.size();
  }
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = sse_bytes.substr(at + skip);
  std::size_t length = 0;
  while (length < rest.size() && length <= 128 &&
         (std::isalnum(static_cast<unsigned char>(rest[length])) != 0 || rest[length] == '_')) {
    ++length;
  }
  // The id must go on with "-": `chatcmpl-{req_id}-{suffix}`.
  if (length == 0 || length > 128 || length >= rest.size() || rest[length] != '-') return std::nullopt;
  return std::string(rest.substr(0, length));
}

}  // namespace coordinator
