#include "coordinator/errors.hpp"

#include <array>
#include <nlohmann/json.hpp>

#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

constexpr std::string_view kInvalidRequest = "invalid_request_error";
constexpr std::string_view kUnavailable = "service_unavailable";
constexpr std::string_view kRateLimit = "rate_limit_exceeded";
constexpr std::string_view kUpstream = "upstream_error";
constexpr std::string_view kTimeout = "timeout";
// A client that is told to wait is told for how long: long enough for a child
// to free up, short enough not to idle a fleet that has room again.
constexpr int kRetrySoon = 5;

struct Row {
  errc error;
  ErrorSpec spec;
};

// Rows in the enum's order (checked by a unit test).
constexpr std::array kTable{
    Row{errc::bad_request, {400, kInvalidRequest, "bad_request", 0}},
    Row{errc::headers_too_large, {431, kInvalidRequest, "headers_too_large", 0}},
    Row{errc::body_too_large, {413, kInvalidRequest, "body_too_large", 0}},
    Row{errc::invalid_json, {400, kInvalidRequest, "invalid_json", 0}},
    Row{errc::invalid_req_id, {400, kInvalidRequest, "invalid_req_id", 0}},
    Row{errc::not_found, {404, kInvalidRequest, "not_found", 0}},
    Row{errc::model_not_found, {404, kInvalidRequest, "model_not_found", 0}},
    Row{errc::method_not_allowed, {405, kInvalidRequest, "method_not_allowed", 0}},
    Row{errc::invalid_api_key, {401, kInvalidRequest, "invalid_api_key", 0}},
    Row{errc::admin_not_local, {403, "permission_error", "admin_not_local", 0}},
    Row{errc::unknown_child, {404, kInvalidRequest, "unknown_child", 0}},
    Row{errc::admin_action_refused, {409, kInvalidRequest, "admin_action_refused", 0}},
    Row{errc::too_many_connections, {503, kUnavailable, "too_many_connections", kRetrySoon}},
    Row{errc::no_healthy_children, {503, kUnavailable, "no_healthy_children", 0}},
    Row{errc::queue_full, {429, kRateLimit, "queue_full", kRetrySoon}},
    Row{errc::queue_timeout, {503, kUnavailable, "queue_timeout", kRetrySoon}},
    Row{errc::all_children_failed, {502, kUpstream, "all_children_failed", 0}},
    Row{errc::all_children_rate_limited, {429, kRateLimit, "all_children_rate_limited", kRetrySoon}},
    // Retry-After: the seconds until the first cooldown ends, set where it is known.
    Row{errc::quota_exhausted, {429, kRateLimit, "quota_exhausted", kRetrySoon}},
    Row{errc::upstream_timeout, {504, kTimeout, "upstream_timeout", 0}},
    Row{errc::upstream_stalled, {504, kTimeout, "upstream_stalled", 0}},
    Row{errc::request_cancelled, {499, kInvalidRequest, "request_cancelled", 0}},
    Row{errc::child_stream_aborted, {502, kUpstream, "child_stream_aborted", 0}},
    Row{errc::child_stream_error, {502, kUpstream, "child_stream_error", 0}},
    Row{errc::stream_quota_exhausted, {502, kUpstream, "quota_exhausted", 0}},
};

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "coordinator"; }
  std::string message(int value) const override {
    if (value < 1 || static_cast<std::size_t>(value) > kTable.size()) return "unknown coordinator error";
    return std::string(kTable[static_cast<std::size_t>(value) - 1].spec.code);
  }
};

}  // namespace

const ErrorSpec& spec_of(errc error) {
  return kTable.at(static_cast<std::size_t>(error) - 1).spec;
}

const boost::system::error_category& coordinator_category() {
  static const Category category;
  return category;
}

boost::system::error_code make_error_code(errc error) {
  return {static_cast<int>(error), coordinator_category()};
}

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  nlohmann::json body = {{"error", {{"message", message}, {"type", type}, {"code", code}}}};
  return dump_json(body);
}

std::string error_body(errc error, std::string_view message) {
  const ErrorSpec& spec = spec_of(error);
  return error_body(message, spec.type, spec.code);
}

std::string stream_abort_events(std::string_view message, std::string_view type, std::string_view code) {
  return "data: " + error_body(message, type, code) + "\n\ndata: [DONE]\n\n";
}

std::string stream_abort_events(errc error, std::string_view message) {
  const ErrorSpec& spec = spec_of(error);
  return stream_abort_events(message, spec.type, spec.code);
}

std::optional<unsigned> status_of_code(std::string_view code) {
  for (const Row& row : kTable) {
    if (row.spec.code == code) return row.spec.status;
  }
  return std::nullopt;
}

bool error_table_in_order() {
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    if (static_cast<std::size_t>(kTable[i].error) != i + 1) return false;
  }
  return true;
}

}  // namespace coordinator
