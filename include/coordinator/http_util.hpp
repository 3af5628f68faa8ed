#pragma once

#include <array>
#include <boost/beast/http/field.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/errors.hpp"

namespace coordinator {

// Serialises JSON that may hold bytes from outside (request paths, file
// names): invalid UTF-8 is replaced, never thrown on.
std::string dump_json(const nlohmann::json& value);

// error_body and stream_abort_events: see errors.hpp.

// True for headers that describe one connection and must not be forwarded
// (RFC 9110 section 7.6.1), compared case-insensitively.
bool is_hop_by_hop(std::string_view field_name);
// The same by Beast's code for a parsed field: all nine names are known to
// Beast, so a field it does not know is never one (no string compares).
bool is_hop_by_hop(boost::beast::http::field name);

// The raw value of `name` in the query of `target` ("" when absent); not
// percent-decoded (API keys and the values routes read are plain).
std::string_view query_param(std::string_view target, std::string_view name);

// A Content-Type of text/event-stream (with or without parameters).
bool is_event_stream(std::string_view content_type);
// A Retry-After in delta-seconds; a date or anything else is ignored.
std::optional<double> retry_after_seconds(std::string_view value);

// True when `connection_value` (a Connection header) lists `field_name`.
bool connection_lists(std::string_view connection_value, std::string_view field_name);

// A req_id as the children use it: 1-128 of [A-Za-z0-9_-].
bool is_valid_req_id(std::string_view req_id);

// ASCII case-insensitive equality, as HTTP field names compare (std::tolower
// consults the locale per character). Inline: most calls differ in length.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// A first look at a request's raw header block, before Beast parses it, for
// what Beast would accept but a proxy must refuse (request smuggling shapes).
struct HeaderBlockCheck {
  enum class Problem { none, obs_fold, bare_lf, too_many_fields };
  bool complete = false;   // the blank line that ends the headers was seen
  std::size_t length = 0;  // bytes up to and including it, when complete
  Problem problem = Problem::none;
};
HeaderBlockCheck check_header_block(std::string_view bytes, std::size_t max_fields);

// A client's X-Request-Id is kept when it is 1-128 of [A-Za-z0-9._:-].
bool is_valid_request_id(std::string_view id);
// A new request id: 16 random hex digits, held inline (a std::string of 16
// characters is past the small-string buffer: one allocation per request).
struct RequestId {
  std::array<char, 16> digits;
  std::string_view view() const { return {digits.data(), digits.size()}; }
};
RequestId new_request_id();

// One access-log line per request (text, or JSON with --log-format json).
void log_access(std::string_view method, std::string_view path, unsigned status, std::string_view child, double seconds,
                std::uint64_t bytes, std::string_view request_id);
// Selects the log format of the coordinator's own log and the access log.
void configure_logging(bool json);

}  // namespace coordinator
