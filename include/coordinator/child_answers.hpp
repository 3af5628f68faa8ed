#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/usage.hpp"

// What the real child (AIstudioProxyAPI) answers, and what the relay makes of
// it. Pure functions, no I/O: each decision is unit-tested on its own.
namespace coordinator {

// What to do with a child's answer status while nothing has reached the client.
enum class StatusVerdict {
  relay,         // the answer goes to the client (the child may already have run the prompt)
  try_next,      // no work was done: the next child gets the request (503)
  rate_limited,  // 429: cool the child down, try the next one
  quota,         // 530, the child's quota parking timed out: cool it down, try the next one
};
StatusVerdict judge_status(unsigned status);

// The OpenAI error type and code the coordinator gives a child's error status.
struct ErrorKind {
  std::string_view type;
  std::string_view code;
};
ErrorKind child_error_kind(unsigned status);

// A child's error body in the one OpenAI shape {"error":{"message","type","code"}}.
// FastAPI's {"detail": "..."} (or a 422's list of problems) is rewrapped; a body
// already in the OpenAI shape, or not JSON at all, gives nothing (relay it as it is).
std::optional<std::string> rewrap_child_error(unsigned status, std::string_view body);

// The error carried by one SSE event (its text without the blank line that
// ends it), when its data is a JSON object with an "error" member.
struct StreamError {
  std::string message;
  bool quota = false;          // a quota or auth-rotation failure: the account is spent
  bool openai_shaped = false;  // already {"error":{"message",...}}
};
std::optional<StreamError> stream_error_of(std::string_view event);

// True for the child's own words for a spent account (quota, auth rotation).
bool is_quota_message(std::string_view message);

// The kinds of SSE events the relay tells apart.
enum class SseEventKind { comment, data, done, error };
SseEventKind classify_event(std::string_view event);

// True when a data event carries work for the client: a delta with content,
// reasoning or tool calls, or anything that is not a chat chunk. The real
// child's empty "done" and usage chunks are not: a stream made only of them
// (and [DONE]) has delivered nothing and may still be retried.
bool is_substantive_event(std::string_view event);

// The end of the last complete event in `bytes` (just past its blank line),
// 0 when no event is complete yet. Both "\n\n" and "\r\n\r\n" end an event.
std::size_t complete_events_end(std::string_view bytes);

// Calls `visit(event_text, separator)` for each complete event in `bytes`
// (up to complete_events_end). Stops early when `visit` returns false.
template <class Visit>
void for_each_event(std::string_view bytes, Visit visit) {
  std::size_t start = 0;
  while (start < bytes.size()) {
    const std::size_t lf = bytes.find("\n\n", start);
    const std::size_t crlf = bytes.find("\r\n\r\n", start);
    if (lf == std::string_view::npos && crlf == std::string_view::npos) return;
    const bool use_crlf = crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf);
    const std::size_t end = use_crlf ? crlf : lf;
    const std::size_t separator = use_crlf ? 4 : 2;
    if (!visit(bytes.substr(start, end - start), bytes.substr(end, separator))) return;
    start = end + separator;
  }
}

// Decides, event by event, what of a child's event stream goes to the client
// now. Until the first event with work in it (`started`), comments are dropped
// and the child's empty chunks held back, so that an error in that time lets
// the request go to another child with nothing sent. [DONE] is held until the
// stream ends: the real child sends its quota error after it.
class StreamGate {
 public:
  // Feeds bytes as they arrive; `out` is then what to send now. Returns the
  // error event that ends the stream, when one arrived (`out` holds the
  // events before it).
  std::optional<StreamError> take(std::string_view bytes);
  // The stream ended cleanly: what is still held, to be sent last.
  std::string finish();

  bool started = false;
  std::string out;

 private:
  std::string pending_;  // bytes of an event not complete yet
  std::string held_;     // empty chunks before the start, and [DONE]
};

// The child's req_id in an answer's bytes: the first `"id":"..."` of a form
// the real child makes: `{prefix}{req_id}-{ts}` (JSON answer),
// `{prefix}{req_id}-{ts}-{rand}` (stream chunks) or `chatcmpl-{req_id}` (the
// path without the stream proxy). `prefix` is CHAT_COMPLETION_ID_PREFIX, any text.
std::optional<std::string> extract_req_id(std::string_view answer_bytes);
// The same for one id value.
std::optional<std::string> req_id_of_completion_id(std::string_view id);

// What the relay learns from the bytes of a child's answer: the req_id in the
// first bytes of a stream (the real child names it in every chunk id), for
// cancels and the owner table; and the usage the answer reports (its JSON
// body's, or a stream's last chunk's), for the usage counters.
class AnswerWatch {
 public:
  explicit AnswerWatch(std::function<void(const std::string&)> on_req_id) : on_req_id_(std::move(on_req_id)) {}
  void scan(std::string_view bytes, bool stream) {
    if (stream) scan_req_id(bytes);
    usage_.feed(bytes);
  }
  const std::optional<std::string>& req_id() const { return req_id_; }
  std::optional<TokenUsage> usage() const { return usage_.result(); }
  // Another attempt begins: what an earlier one reported is not this answer's usage.
  void new_attempt() { usage_.reset(); }

 private:
  void scan_req_id(std::string_view bytes);

  std::function<void(const std::string&)> on_req_id_;
  std::optional<std::string> req_id_;
  std::string scanned_;
  UsageScanner usage_;
};

}  // namespace coordinator
