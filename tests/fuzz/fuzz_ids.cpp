// Ids and the error bodies built around outside text:
//  - is_valid_req_id / is_valid_request_id against a reference definition;
//  - extract_req_id on streamed bytes: its answer is always a valid req_id that
//    follows a `"id":"chatcmpl-` marker in the input;
//  - error_body / stream_abort_events must always produce valid JSON (resp. an
//    SSE error event then `data: [DONE]`) whatever the message bytes: messages
//    quote paths, child names and errors from outside.
// Input: the whole input is the id / the streamed bytes / the message; when it
// holds NUL bytes, the parts after the first and second NUL are also used as
// the error "type" and "code".
#include <nlohmann/json.hpp>

#include "coordinator/child_answers.hpp"
#include "coordinator/http_util.hpp"
#include "fuzz_util.hpp"

namespace {

bool ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool reference_req_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!ascii_alnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

bool reference_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!ascii_alnum(c) && c != '-' && c != '_' && c != '.' && c != ':') return false;
  }
  return true;
}

// The error object a client gets back: valid JSON holding what was passed in
// (exactly, when it was valid UTF-8).
void check_error_json(const std::string& text, std::string_view message, std::string_view type, std::string_view code) {
  FUZZ_CHECK(nlohmann::json::accept(text));
  const auto json = nlohmann::json::parse(text);
  FUZZ_CHECK(json.is_object() && json.size() == 1 && json.contains("error"));
  const auto& error = json["error"];
  FUZZ_CHECK(error.is_object() && error.size() == 3);
  FUZZ_CHECK(error["message"].is_string() && error["type"].is_string() && error["code"].is_string());
  if (fuzz::valid_utf8(message)) FUZZ_CHECK(error["message"].get<std::string>() == message);
  if (fuzz::valid_utf8(type)) FUZZ_CHECK(error["type"].get<std::string>() == type);
  if (fuzz::valid_utf8(code)) FUZZ_CHECK(error["code"].get<std::string>() == code);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fuzz::as_view(data, size);

  FUZZ_CHECK(coordinator::is_valid_req_id(input) == reference_req_id(input));
  FUZZ_CHECK(coordinator::is_valid_request_id(input) == reference_request_id(input));

  if (const auto req_id = coordinator::extract_req_id(input)) {
    FUZZ_CHECK(coordinator::is_valid_req_id(*req_id));
    FUZZ_CHECK(req_id->size() == 7 && input.find(*req_id) != std::string_view::npos);
  }

  // The child's answers: a rewrapped error is always the one OpenAI shape, and
  // event splitting never reads past the bytes it was given.
  if (const auto rewrapped = coordinator::rewrap_child_error(500, input)) {
    const auto json = nlohmann::json::parse(*rewrapped, nullptr, false);
    FUZZ_CHECK(json.is_object() && json.contains("error") && json["error"].contains("message"));
  }
  std::size_t covered = 0;
  coordinator::for_each_event(input, [&](std::string_view event, std::string_view separator) {
    FUZZ_CHECK(event.data() >= input.data() && event.data() + event.size() <= input.data() + input.size());
    covered = static_cast<std::size_t>(separator.data() + separator.size() - input.data());
    (void)coordinator::classify_event(event);
    return true;
  });
  // What the relay drops past the visited events is only the rest of a line break.
  const std::size_t end = coordinator::complete_events_end(input);
  FUZZ_CHECK(covered <= end);
  FUZZ_CHECK(input.substr(covered, end - covered).find_first_not_of("\r\n") == std::string_view::npos);

  const auto parts = fuzz::split(input, '\0', 3);
  const std::string_view message = input;
  const std::string_view type = parts.size() > 1 ? std::string_view(parts[1]) : "invalid_request_error";
  const std::string_view code = parts.size() > 2 ? std::string_view(parts[2]) : "fuzz";

  check_error_json(coordinator::error_body(message, type, code), message, type, code);

  const std::string events = coordinator::stream_abort_events(coordinator::errc::child_stream_aborted, message);
  constexpr std::string_view kPrefix = "data: ";
  constexpr std::string_view kSuffix = "\n\ndata: [DONE]\n\n";
  FUZZ_CHECK(events.size() > kPrefix.size() + kSuffix.size());
  FUZZ_CHECK(events.compare(0, kPrefix.size(), kPrefix) == 0);
  FUZZ_CHECK(events.compare(events.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0);
  const std::string payload = events.substr(kPrefix.size(), events.size() - kPrefix.size() - kSuffix.size());
  // One SSE data line: a raw line break inside would split the event.
  FUZZ_CHECK(payload.find('\n') == std::string::npos && payload.find('\r') == std::string::npos);
  check_error_json(payload, message, "upstream_error", "child_stream_aborted");
  return 0;
}
