#pragma once

// What the three protocol translators (Responses, Anthropic Messages, Gemini)
// share: the options a request is translated with, the error and result
// values, and the reading of the child's chat answers and stream chunks. Pure:
// no I/O, no clocks, no exceptions escape (every field is type-checked before
// it is read).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coordinator::translate {

// --model-alias FROM=TO, applied to the model a client names before the chat
// request is built. Answers show the name the client used.
using ModelAliases = std::map<std::string, std::string, std::less<>>;

struct Options {
  const ModelAliases* model_aliases = nullptr;  // not owned; null: every name passes through
  // Unique per request (e.g. its X-Request-Id): every id the translator makes
  // (response, message and item ids) derives from it, so tests get stable output.
  std::string id_base = "0";
  std::int64_t created = 0;  // unix seconds stamped on answers that carry a time
};

// A request (or an answer) that cannot be served, before the protocol renders
// it in its own error shape (each protocol's error_body()).
struct ProtocolError {
  int status = 400;
  std::string message;
  std::string param;  // the offending field in the protocol's notation; empty when none
  std::string code;   // a machine-readable code where the protocol has one (OpenAI); may be empty
};

// A value or the error a client gets instead: errors are values on this path.
template <typename Value>
class Result {
 public:
  Result(Value value) : value_(std::move(value)) {}          // NOLINT: implicit on purpose, as std::expected
  Result(ProtocolError error) : error_(std::move(error)) {}  // NOLINT
  bool ok() const { return value_.has_value(); }
  const Value& value() const { return *value_; }
  Value& value() { return *value_; }
  const ProtocolError& error() const { return error_; }

 private:
  std::optional<Value> value_;
  ProtocolError error_;
};

// What the relay drives for one streamed request: each protocol's class turns
// the child's chunks into that protocol's SSE events. Every method returns
// bytes ready to write (possibly empty); none throws.
class StreamTranslator {
 public:
  virtual ~StreamTranslator() = default;
  // The events that open the stream; at most once (later calls return "").
  // on_chunk, finish and on_error call it first if nobody did.
  virtual std::string start() = 0;
  // One parsed `data:` JSON of the child's chat.completion.chunk stream.
  virtual std::string on_chunk(const nlohmann::json& chunk) = 0;
  // The closing events, on the child's `data: [DONE]` or the end of its stream.
  virtual std::string finish() = 0;
  // The protocol's error event, ending the stream (after it every call returns "").
  virtual std::string on_error(int status, std::string_view message) = 0;
  // An event to send while the child is silent; "" where the protocol has none
  // (the relay then sends an SSE comment).
  virtual std::string keepalive() = 0;
};

// --- JSON reading without exceptions ---------------------------------------

// The member `key` of `object`; null when `object` is no object or the member
// is absent or JSON null (the APIs accept null for an omitted optional field).
const nlohmann::json* member(const nlohmann::json& object, const char* key);
// The same under either of two names (Gemini's REST API takes camelCase and
// the proto's snake_case: `systemInstruction` and `system_instruction`).
const nlohmann::json* member(const nlohmann::json& object, const char* key, const char* alternative_key);
// The string member `key`, or "" when absent or of another type.
std::string string_member(const nlohmann::json& object, const char* key);

// Serialised JSON that may hold the client's bytes: invalid UTF-8 is replaced,
// never thrown on.
std::string dump(const nlohmann::json& value);
// The SSE framing of Responses and Anthropic (`event: NAME`) and of Gemini (data only).
std::string sse_event(std::string_view name, const nlohmann::json& data);
std::string sse_data(const nlohmann::json& data);

// The model as the chat request names it: the alias target, else as given.
std::string resolve_model(std::string_view requested, const Options& options);

// Token estimate as the real child makes its `usage` (api_utils/utils_ext/tokens.py):
// CJK characters / 1.5 + other characters / 4, at least 1 for any text.
std::int64_t estimate_tokens(std::string_view utf8_text);

// --- the chat request --------------------------------------------------------

// The prompt tokens the child will report for `chat_request`, estimated as it
// counts them ("role: content" per message) plus the tool declarations.
std::int64_t estimate_prompt_tokens(const nlohmann::json& chat_request);

// A 400 naming the field, for what the request says wrongly or asks for and
// the child cannot do (refused, never silently dropped).
ProtocolError invalid_request(std::string param, std::string message);

enum class FieldKind { number, positive_integer, boolean, string_list };
// Copies one optional field of the client's request (`value` as member()
// found it; null: nothing to copy) to `chat[chat_key]`, or says why not.
std::optional<ProtocolError> copy_field(const nlohmann::json* value, std::string_view name, FieldKind kind,
                                        nlohmann::json& chat, const char* chat_key);

// Builds the chat `messages` the way the real child reads them
// (api_utils/utils_ext/prompts.py): it takes only the FIRST system message and
// only when its content is a string, so every system text is merged into one
// leading system message; content is always a string; an assistant turn's tool
// calls are `tool_calls` of that assistant message; tool results are `tool`
// messages with `tool_call_id`.
class ChatMessages {
 public:
  void add_system(std::string_view text);
  void add_user(std::string text);
  void add_assistant_text(std::string text);
  // Joins the assistant message just added (its text and earlier calls), else
  // starts one with null content. `arguments` is JSON text, as chat carries it.
  void add_assistant_tool_call(std::string id, std::string name, std::string arguments);
  void add_tool_result(std::string call_id, std::string content);
  // The child refuses a request of system messages only (validation.py).
  bool has_conversation() const { return !turns_.empty(); }
  nlohmann::json take();

 private:
  std::string system_;
  nlohmann::json turns_ = nlohmann::json::array();
};

// --- the child's answers -------------------------------------------------------

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text, as the chat API carries it
};

// A non-streamed chat.completion, as far as the translators need it.
struct ChatAnswer {
  std::string text;  // choices[0].message.content; "" for null
  std::vector<ToolCall> tool_calls;
  std::string finish_reason;  // "" when the child gave none
  std::optional<Usage> usage;
  std::string stop_sequence;  // which stop sequence ended it, where a backend says (vLLM's stop_reason)
};

// 502 when `answer` is no chat.completion (the child's body is relayed here
// only on a 2xx status; its error statuses go to the protocol's error_body).
Result<ChatAnswer> read_chat_answer(const nlohmann::json& answer);

// The id of a call the child streamed or answered: its own, else one made
// from the request's id base and the call's position.
std::string tool_call_id(const ToolCall& call, const Options& options, std::size_t position);

// Parses tool arguments (JSON text) to the object Anthropic and Gemini carry:
// text that is no JSON object is kept whole under "arguments" rather than lost.
nlohmann::json arguments_object(std::string_view arguments);

// One thing a stream chunk adds, in the order the chunk has them.
struct StreamPiece {
  enum class Kind { text, tool_call_started, tool_call_arguments, error };
  Kind kind = Kind::text;
  std::size_t call = 0;  // for tool calls: the position in ChatStreamReader::tool_calls()
  std::string text;      // the text delta, the arguments fragment, or the error message
};

// Folds the child's chat.completion.chunk objects into pieces and keeps the
// answer so far. Tool calls are tracked by `index` (the real child's
// Playwright path repeats `id` on every fragment, its stream path sends each
// call whole in one chunk); without an index by `id`, else the last call.
// `delta.reasoning_content` (the real child's thinking) is not part of the
// answer and is skipped, as the child itself leaves it out of its usage.
class ChatStreamReader {
 public:
  std::vector<StreamPiece> read(const nlohmann::json& chunk);
  const std::vector<ToolCall>& tool_calls() const { return calls_; }
  const std::string& finish_reason() const { return finish_reason_; }
  const std::optional<Usage>& usage() const { return usage_; }

 private:
  void read_tool_call(const nlohmann::json& delta, std::vector<StreamPiece>& pieces);
  std::size_t slot_of(const nlohmann::json& delta);

  std::vector<ToolCall> calls_;
  std::vector<std::int64_t> chat_indexes_;  // per call: the chat `index`, -1 when it had none
  std::string finish_reason_;
  std::optional<Usage> usage_;
};

}  // namespace coordinator::translate
