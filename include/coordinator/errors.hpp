#pragma once

#include <boost/system/error_code.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace coordinator {

// Every error the coordinator itself makes. Each has one row in the table of
// errors.cpp (status, OpenAI type and code, Retry-After); every reply and every
// stream's error event is built from that row, so a code never drifts between
// the places that use it.
enum class errc {
  // The client's request.
  bad_request = 1,       // malformed HTTP
  headers_too_large,     // over 64 KiB or too many fields
  body_too_large,        // over --max-body
  invalid_json,          // the body of a chat completion is not a JSON object
  invalid_req_id,        // POST /v1/cancel/{req_id} with a malformed id
  not_found,             // no route
  model_not_found,       // a chat completion names a model no ready child lists
  method_not_allowed,    // the route exists, the method does not
  invalid_api_key,       // a key is required and missing or unknown
  admin_not_local,       // /admin/* from a non-loopback peer
  unknown_child,         // /admin/children/{name}/... with no such child
  admin_action_refused,  // the action is not possible now
  too_many_connections,  // --max-connections reached
  // The fleet, before an answer started.
  no_healthy_children,
  queue_full,
  queue_timeout,
  all_children_failed,
  all_children_rate_limited,
  quota_exhausted,
  upstream_timeout,   // the child did not answer within the request or idle timeout
  upstream_stalled,   // the child sent nothing for --stall-timeout
  request_cancelled,  // POST /v1/cancel ended the relay
  // A stream that had started.
  child_stream_aborted,    // the child broke off, timed out or answered without a stream
  child_stream_error,      // the child sent an error event mid-stream
  stream_quota_exhausted,  // the child's stream said its account is out of quota
};

// What a client is told for one errc.
struct ErrorSpec {
  unsigned status;
  std::string_view type;
  std::string_view code;
  int retry_after;  // seconds for a Retry-After header; 0 for none
};

const ErrorSpec& spec_of(errc error);
// The status of the first row with this `code` (a stream's error event
// carries only the code); nullopt for a code of no row (a child's own).
std::optional<unsigned> status_of_code(std::string_view code);
// The table's rows follow the enum (for its unit test).
bool error_table_in_order();

const boost::system::error_category& coordinator_category();
boost::system::error_code make_error_code(errc error);

// The one OpenAI-style error body, {"error": {"message", "type", "code"}}.
std::string error_body(std::string_view message, std::string_view type, std::string_view code);
std::string error_body(errc error, std::string_view message);

// The SSE events that end a stream with an error: the error event, then [DONE].
std::string stream_abort_events(std::string_view message, std::string_view type, std::string_view code);
std::string stream_abort_events(errc error, std::string_view message);

}  // namespace coordinator

template <>
struct boost::system::is_error_code_enum<coordinator::errc> : std::true_type {};
