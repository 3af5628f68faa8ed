#include "coordinator/child_answers.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

constexpr std::size_t kReqIdLength = 7;  // the real child: random.choices(a-z0-9, k=7)

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_req_id(std::string_view text) {
  return text.size() == kReqIdLength &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

bool icontains(std::string_view haystack, std::string_view needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         }) != haystack.end();
}

nlohmann::json parse_object(std::string_view text) {
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return json.is_object() ? json : nlohmann::json{};
}

// FastAPI's validation detail: [{"loc": [...], "msg": "...", ...}, ...].
std::string describe_validation(const nlohmann::json& problems) {
  std::string text;
  for (const auto& problem : problems) {
    if (!text.empty()) text += "; ";
    const auto msg = problem.is_object() ? problem.find("msg") : problem.end();
    if (msg == problem.end() || !msg->is_string()) {
      text += dump_json(problem);
      continue;
    }
    std::string where;
    if (const auto loc = problem.find("loc"); loc != problem.end() && loc->is_array()) {
      for (const auto& part : *loc) {
        if (!where.empty()) where += '.';
        where += part.is_string() ? part.get<std::string>() : dump_json(part);
      }
    }
    text += where.empty() ? msg->get<std::string>() : where + ": " + msg->get<std::string>();
  }
  return text.empty() ? "the request was refused as invalid" : text;
}

// The payload of an event's data lines, joined by "\n" (the SSE rule).
std::string data_of(std::string_view event, bool& has_data) {
  std::string data;
  has_data = false;
  std::size_t start = 0;
  while (start <= event.size()) {
    std::size_t end = event.find('\n', start);
    if (end == std::string_view::npos) end = event.size();
    std::string_view line = event.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 5) == "data:") {
      line.remove_prefix(5);
      if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (has_data) data += '\n';
      data += line;
      has_data = true;
    }
    start = end + 1;
  }
  return data;
}

}  // namespace

StatusVerdict judge_status(unsigned status) {
  switch (status) {
    case 503:  // not ready, or its lock wait timed out: the request never reached the page
      return StatusVerdict::try_next;
    case 530:  // parked 60 s behind a spent quota, never run
      return StatusVerdict::quota;
    case 429:
      return StatusVerdict::rate_limited;
    default:  // 500, 502, 504 and the rest: the page may already have run the prompt
      return StatusVerdict::relay;
  }
}

ErrorKind child_error_kind(unsigned status) {
  switch (status) {
    case 400:
      return {"invalid_request_error", "bad_request"};
    case 401:
      return {"invalid_request_error", "invalid_api_key"};
    case 403:
      return {"invalid_request_error", "forbidden"};
    case 404:
      return {"invalid_request_error", "not_found"};
    case 422:
      return {"invalid_request_error", "validation_error"};
    case 429:
      return {"rate_limit_exceeded", "rate_limited"};
    case 499:
      return {"invalid_request_error", "request_cancelled"};
    case 500:
      return {"server_error", "child_error"};
    case 502:
      return {"upstream_error", "bad_gateway"};
    case 503:
      return {"service_unavailable", "child_unavailable"};
    case 504:
      return {"timeout", "upstream_timeout"};
    case 530:
      return {"rate_limit_exceeded", "quota_exhausted"};
    default:
      return status < 500 ? ErrorKind{"invalid_request_error", "child_error"}
                          : ErrorKind{"server_error", "child_error"};
  }
}

std::optional<std::string> rewrap_child_error(unsigned status, std::string_view body) {
  const nlohmann::json json = parse_object(body);
  if (json.is_null()) return std::nullopt;
  std::string message;
  if (const auto detail = json.find("detail"); detail != json.end()) {
    message = detail->is_string()  ? detail->get<std::string>()
              : detail->is_array() ? describe_validation(*detail)
                                   : dump_json(*detail);
  } else if (const auto error = json.find("error"); error != json.end() && error->is_string()) {
    message = error->get<std::string>();
  } else {
    return std::nullopt;  // already {"error":{...}}, or a shape we do not know: relayed as it is
  }
  const ErrorKind kind = child_error_kind(status);
  return error_body(message, kind.type, kind.code);
}

bool is_quota_message(std::string_view message) {
  return icontains(message, "quota") || icontains(message, "auth rotation") ||
         icontains(message, "resource_exhausted") || icontains(message, "resource exhausted");
}

std::optional<StreamError> stream_error_of(std::string_view event) {
  if (event.find("\"error\"") == std::string_view::npos) return std::nullopt;  // cheap test first
  bool has_data = false;
  const std::string data = data_of(event, has_data);
  if (!has_data) return std::nullopt;
  const nlohmann::json json = parse_object(data);
  if (json.is_null()) return std::nullopt;
  const auto error = json.find("error");
  if (error == json.end() || error->is_null()) return std::nullopt;
  StreamError found;
  if (error->is_string()) {
    found.message = error->get<std::string>();
  } else if (const auto message = error->is_object() ? error->find("message") : error->end();
             message != error->end() && message->is_string()) {
    found.message = message->get<std::string>();
    found.openai_shaped = true;
  } else {
    found.message = dump_json(*error);
  }
  found.quota = is_quota_message(found.message);
  return found;
}

SseEventKind classify_event(std::string_view event) {
  const bool has_data_line = event.substr(0, 5) == "data:" || event.find("\ndata:") != std::string_view::npos;
  // The common case, a chunk of content, without copying its payload.
  if (event.find("\"error\"") == std::string_view::npos && event.find("[DONE]") == std::string_view::npos) {
    return has_data_line ? SseEventKind::data : SseEventKind::comment;
  }
  bool has_data = false;
  const std::string data = data_of(event, has_data);
  if (!has_data) return SseEventKind::comment;  // comments (": ...") and fields without data
  if (data == "[DONE]") return SseEventKind::done;
  return stream_error_of(event) ? SseEventKind::error : SseEventKind::data;
}

bool is_substantive_event(std::string_view event) {
  bool has_data = false;
  const std::string data = data_of(event, has_data);
  if (!has_data || data == "[DONE]") return false;
  const nlohmann::json json = parse_object(data);
  const auto choices = json.is_object() ? json.find("choices") : json.end();
  if (json.is_null() || choices == json.end() || !choices->is_array()) return true;
  for (const auto& choice : *choices) {
    const auto delta = choice.is_object() ? choice.find("delta") : choice.end();
    if (delta == choice.end() || !delta->is_object()) return true;
    for (const char* key : {"content", "reasoning_content", "tool_calls", "function_call"}) {
      const auto field = delta->find(key);
      if (field == delta->end() || field->is_null()) continue;
      const bool empty =
          (field->is_string() && field->get_ref<const std::string&>().empty()) || (field->is_array() && field->empty());
      if (!empty) return true;
    }
  }
  return false;
}

std::size_t complete_events_end(std::string_view bytes) {
  const std::size_t lf = bytes.rfind("\n\n");
  const std::size_t crlf = bytes.rfind("\r\n\r\n");
  std::size_t end = 0;
  if (lf != std::string_view::npos) end = lf + 2;
  if (crlf != std::string_view::npos) end = std::max(end, crlf + 4);
  return end;
}

std::optional<StreamError> StreamGate::take(std::string_view bytes) {
  out.clear();
  pending_.append(bytes);
  const std::size_t end = complete_events_end(pending_);
  std::optional<StreamError> failure;
  for_each_event(std::string_view(pending_).substr(0, end), [&](std::string_view event, std::string_view separator) {
    switch (classify_event(event)) {
      case SseEventKind::error:
        failure = stream_error_of(event);
        return false;
      case SseEventKind::done:
        held_.append(event).append(separator);
        return true;
      case SseEventKind::comment:
        // Before the start our own heartbeats stand in; after [DONE] nothing may follow it.
        if (started && held_.empty()) out.append(event).append(separator);
        return true;
      case SseEventKind::data:
        if (!started && !is_substantive_event(event)) {
          held_.append(event).append(separator);
          return true;
        }
        started = true;
        out += held_;
        held_.clear();
        out.append(event).append(separator);
        return true;
    }
    return true;
  });
  pending_.erase(0, end);
  return failure;
}

std::string StreamGate::finish() {
  std::string rest = std::move(held_) + pending_;
  held_.clear();
  pending_.clear();
  return rest;
}

std::optional<std::string> req_id_of_completion_id(std::string_view id) {
  const auto last_dash = id.rfind('-');
  if (last_dash == std::string_view::npos) return std::nullopt;
  const std::string_view last = id.substr(last_dash + 1);
  std::string_view before = id.substr(0, last_dash);
  constexpr std::size_t kMinTimestampDigits = 9;  // int(time.time()): 10 digits until 2286
  if (last.size() == 3 && all_digits(last)) {
    // {prefix}{req_id}-{ts}-{rand}: the stream proxy's chunk ids.
    const auto ts_dash = before.rfind('-');
    if (ts_dash == std::string_view::npos) return std::nullopt;
    const std::string_view ts = before.substr(ts_dash + 1);
    if (ts.size() < kMinTimestampDigits || !all_digits(ts)) return std::nullopt;
    before = before.substr(0, ts_dash);
  } else if (last.size() >= kMinTimestampDigits && all_digits(last)) {
    // {prefix}{req_id}-{ts}: a JSON answer's id.
  } else if (id.substr(0, last_dash + 1) == "chatcmpl-" && is_req_id(last)) {
    return std::string(last);  // chatcmpl-{req_id}: the path without the stream proxy
  } else {
    return std::nullopt;
  }
  if (before.size() < kReqIdLength) return std::nullopt;
  const std::string_view req_id = before.substr(before.size() - kReqIdLength);
  if (!is_req_id(req_id)) return std::nullopt;
  return std::string(req_id);
}

std::optional<std::string> extract_req_id(std::string_view answer_bytes) {
  static constexpr std::string_view kKey = "\"id\"";
  static constexpr std::size_t kMaxIdLength = 256;
  const std::size_t key = answer_bytes.find(kKey);
  if (key == std::string_view::npos) return std::nullopt;
  std::size_t at = key + kKey.size();
  while (at < answer_bytes.size() && answer_bytes[at] == ' ') ++at;
  if (at >= answer_bytes.size() || answer_bytes[at] != ':') return std::nullopt;
  ++at;
  while (at < answer_bytes.size() && answer_bytes[at] == ' ') ++at;
  if (at >= answer_bytes.size() || answer_bytes[at] != '"') return std::nullopt;
  ++at;
  const std::size_t close = answer_bytes.find('"', at);
  if (close == std::string_view::npos || close - at > kMaxIdLength) return std::nullopt;
  return req_id_of_completion_id(answer_bytes.substr(at, close - at));
}

// A stream's req_id is in its first chunks: only so much is kept to look for it.
constexpr std::size_t kReqIdScanBytes = std::size_t{8} * 1024;

void AnswerWatch::scan_req_id(std::string_view bytes) {
  if (req_id_ || scanned_.size() >= kReqIdScanBytes) return;
  scanned_.append(bytes.substr(0, kReqIdScanBytes - scanned_.size()));
  req_id_ = extract_req_id(scanned_);
  if (!req_id_) return;
  scanned_.clear();
  if (on_req_id_) on_req_id_(*req_id_);
}

}  // namespace coordinator
