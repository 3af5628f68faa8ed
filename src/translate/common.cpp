// Shared by the three translators. Matched against the real child
// (/work/realchild): models/chat.py (Message, ToolCall: `id` and string
// `function.arguments` required), api_utils/utils_ext/prompts.py (first string
// system message only; `tool` messages; assistant `tool_calls`),
// api_utils/response_generators.py and sse.py (chunk shapes, usage in the last
// chunk with finish_reason, `{"error": "..."}` chunks), utils_ext/tokens.py.
#include "coordinator/translate/common.hpp"

#include <algorithm>
#include <cstdint>

#include "coordinator/http_util.hpp"

namespace coordinator::translate {

namespace {

using nlohmann::json;

std::optional<Usage> read_usage(const json& usage) {
  if (!usage.is_object()) return std::nullopt;
  const auto count = [&usage](const char* key) -> std::int64_t {
    const json* value = member(usage, key);
    if (value == nullptr || !value->is_number_integer()) return 0;
    if (!value->is_number_unsigned()) return value->get<std::int64_t>();
    return static_cast<std::int64_t>(std::min<std::uint64_t>(value->get<std::uint64_t>(), INT64_MAX));
  };
  Usage out;
  out.prompt_tokens = count("prompt_tokens");
  out.completion_tokens = count("completion_tokens");
  out.total_tokens = member(usage, "total_tokens") ? count("total_tokens") : out.prompt_tokens + out.completion_tokens;
  return out;
}

// The real child's in-stream errors are `{"error": "text"}`; OpenAI's are `{"error": {"message": ...}}`.
std::string error_message(const json& error) {
  if (error.is_string()) return error.get<std::string>();
  const std::string message = string_member(error, "message");
  return message.empty() ? dump(error) : message;
}

// Chat content as text: a string, or the text of a list of parts.
std::string content_text(const json* content) {
  if (content == nullptr) return {};
  if (content->is_string()) return content->get<std::string>();
  std::string text;
  if (content->is_array()) {
    for (const json& part : *content) text += string_member(part, "text");
  }
  return text;
}

// `function.arguments`: JSON text per the chat API; an object from a lax backend is serialised.
std::string arguments_text(const json* arguments) {
  if (arguments == nullptr) return {};
  if (arguments->is_string()) return arguments->get<std::string>();
  return arguments->is_structured() ? dump(*arguments) : std::string{};
}

bool is_cjk(std::uint32_t code_point) {
  return (code_point >= 0x4E00 && code_point <= 0x9FFF) || (code_point >= 0x3000 && code_point <= 0x303F) ||
         (code_point >= 0xFF00 && code_point <= 0xFFEF);
}

}  // namespace

const json* member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return nullptr;
  return &*found;
}

const json* member(const json& object, const char* key, const char* alternative_key) {
  const json* value = member(object, key);
  return value != nullptr ? value : member(object, alternative_key);
}

std::string string_member(const json& object, const char* key) {
  const json* value = member(object, key);
  return value != nullptr && value->is_string() ? value->get<std::string>() : std::string{};
}

std::string dump(const json& value) {
  return dump_json(value);
}

std::string sse_event(std::string_view name, const json& data) {
  std::string out = "event: ";
  out += name;
  out += "\ndata: ";
  out += dump(data);
  out += "\n\n";
  return out;
}

std::string sse_data(const json& data) {
  return "data: " + dump(data) + "\n\n";
}

std::string resolve_model(std::string_view requested, const Options& options) {
  if (options.model_aliases != nullptr) {
    const auto alias = options.model_aliases->find(requested);
    if (alias != options.model_aliases->end()) return alias->second;
  }
  return std::string(requested);
}

std::int64_t estimate_tokens(std::string_view text) {
  if (text.empty()) return 0;
  std::int64_t cjk = 0;
  std::int64_t other = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    // Code points, as Python's len() counts them; a stray byte counts as one.
    const std::size_t length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    std::uint32_t code_point = length == 1 ? lead : lead & (0x3Fu >> (length - 1));
    for (std::size_t k = 1; k < length && i + k < text.size(); ++k) {
      code_point = (code_point << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3Fu);
    }
    ++(is_cjk(code_point) ? cjk : other);
    i += length;
  }
  const auto tokens = static_cast<std::int64_t>(static_cast<double>(cjk) / 1.5 + static_cast<double>(other) / 4.0);
  return tokens < 1 ? 1 : tokens;
}

std::int64_t estimate_prompt_tokens(const json& chat_request) {
  std::string text;
  const json* messages = member(chat_request, "messages");
  for (const json& message : messages != nullptr && messages->is_array() ? *messages : json::array()) {
    text += string_member(message, "role") + ": " + content_text(member(message, "content"));
    if (const json* calls = member(message, "tool_calls")) text += dump(*calls);
    text += "\n";
  }
  if (const json* tools = member(chat_request, "tools")) text += dump(*tools);
  return estimate_tokens(text);
}

ProtocolError invalid_request(std::string param, std::string message) {
  ProtocolError error;
  error.status = 400;
  error.message = std::move(message);
  error.param = std::move(param);
  return error;
}

std::optional<ProtocolError> copy_field(const json* value, std::string_view name, FieldKind kind, json& chat,
                                        const char* chat_key) {
  if (value == nullptr) return std::nullopt;
  const std::string field(name);
  switch (kind) {
    case FieldKind::number:
      if (!value->is_number()) return invalid_request(field, field + ": must be a number.");
      break;
    case FieldKind::positive_integer:
      // nlohmann parses every non-negative integer as unsigned.
      if (!value->is_number_integer() ||
          (value->is_number_unsigned() ? value->get<std::uint64_t>() < 1 : value->get<std::int64_t>() < 1)) {
        return invalid_request(field, field + ": must be a positive integer.");
      }
      break;
    case FieldKind::boolean:
      if (!value->is_boolean()) return invalid_request(field, field + ": must be a boolean.");
      break;
    case FieldKind::string_list: {
      bool strings = value->is_array();
      for (const json& item : strings ? *value : json::array()) strings = strings && item.is_string();
      if (!strings) return invalid_request(field, field + ": must be a list of strings.");
      break;
    }
  }
  chat[chat_key] = *value;
  return std::nullopt;
}

void ChatMessages::add_system(std::string_view text) {
  if (text.empty()) return;
  if (!system_.empty()) system_ += "\n\n";
  system_ += text;
}

void ChatMessages::add_user(std::string text) {
  turns_.push_back({{"role", "user"}, {"content", std::move(text)}});
}

void ChatMessages::add_assistant_text(std::string text) {
  turns_.push_back({{"role", "assistant"}, {"content", std::move(text)}});
}

void ChatMessages::add_assistant_tool_call(std::string id, std::string name, std::string arguments) {
  json call = {{"id", std::move(id)},
               {"type", "function"},
               {"function", {{"name", std::move(name)}, {"arguments", std::move(arguments)}}}};
  if (turns_.empty() || string_member(turns_.back(), "role") != "assistant") {
    turns_.push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array()}});
  }
  json& assistant = turns_.back();
  if (!assistant.contains("tool_calls")) assistant["tool_calls"] = json::array();
  assistant["tool_calls"].push_back(std::move(call));
}

void ChatMessages::add_tool_result(std::string call_id, std::string content) {
  turns_.push_back({{"role", "tool"}, {"tool_call_id", std::move(call_id)}, {"content", std::move(content)}});
}

json ChatMessages::take() {
  json messages = json::array();
  if (!system_.empty()) messages.push_back({{"role", "system"}, {"content", std::move(system_)}});
  for (json& turn : turns_) messages.push_back(std::move(turn));
  system_.clear();
  turns_ = json::array();
  return messages;
}

Result<ChatAnswer> read_chat_answer(const json& answer) {
  const auto bad = [](std::string why) {
    ProtocolError error;
    error.status = 502;
    error.message = "The backend's answer is not a chat completion: " + why + ".";
    error.code = "bad_backend_answer";
    return error;
  };
  if (!answer.is_object()) return bad("not a JSON object");
  if (const json* error = member(answer, "error")) return bad(error_message(*error));
  const json* choices = member(answer, "choices");
  if (choices == nullptr || !choices->is_array() || choices->empty()) return bad("no choices");
  const json* message = member(choices->front(), "message");
  if (message == nullptr || !message->is_object()) return bad("no message");
  ChatAnswer out;
  out.text = content_text(member(*message, "content"));
  if (const json* calls = member(*message, "tool_calls"); calls != nullptr && calls->is_array()) {
    for (const json& call : *calls) {
      const json* function = member(call, "function");
      if (function == nullptr || !function->is_object()) return bad("a tool call without a function");
      out.tool_calls.push_back(ToolCall{string_member(call, "id"), string_member(*function, "name"),
                                        arguments_text(member(*function, "arguments"))});
    }
  }
  out.finish_reason = string_member(choices->front(), "finish_reason");
  out.stop_sequence = string_member(choices->front(), "stop_reason");
  if (const json* usage = member(answer, "usage")) out.usage = read_usage(*usage);
  return out;
}

std::string tool_call_id(const ToolCall& call, const Options& options, std::size_t position) {
  return call.id.empty() ? "call_" + options.id_base + "_" + std::to_string(position) : call.id;
}

json arguments_object(std::string_view arguments) {
  if (arguments.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  json parsed = json::parse(arguments, nullptr, false);
  if (parsed.is_object()) return parsed;
  return {{"arguments", std::string(arguments)}};
}

std::vector<StreamPiece> ChatStreamReader::read(const json& chunk) {
  std::vector<StreamPiece> pieces;
  if (!chunk.is_object()) return pieces;
  if (const json* error = member(chunk, "error")) {
    pieces.push_back(StreamPiece{StreamPiece::Kind::error, 0, error_message(*error)});
    return pieces;
  }
  if (const json* usage = member(chunk, "usage")) {
    if (auto read = read_usage(*usage)) usage_ = read;
  }
  const json* choices = member(chunk, "choices");
  for (const json& choice : choices != nullptr && choices->is_array() ? *choices : json::array()) {
    // Only the first choice: more than one (n > 1) is refused in every protocol.
    if (const json* index = member(choice, "index"); index != nullptr && *index != 0) continue;
    if (const json* delta = member(choice, "delta"); delta != nullptr && delta->is_object()) {
      if (std::string text = content_text(member(*delta, "content")); !text.empty()) {
        pieces.push_back(StreamPiece{StreamPiece::Kind::text, 0, std::move(text)});
      }
      const json* calls = member(*delta, "tool_calls");
      for (const json& call : calls != nullptr && calls->is_array() ? *calls : json::array()) {
        read_tool_call(call, pieces);
      }
    }
    if (const std::string reason = string_member(choice, "finish_reason"); !reason.empty()) finish_reason_ = reason;
  }
  return pieces;
}

void ChatStreamReader::read_tool_call(const json& delta, std::vector<StreamPiece>& pieces) {
  if (!delta.is_object()) return;
  const json* function = member(delta, "function");
  const std::string name = function != nullptr ? string_member(*function, "name") : std::string{};
  const std::string fragment = function != nullptr ? arguments_text(member(*function, "arguments")) : std::string{};
  const std::size_t slot = slot_of(delta);
  if (slot == calls_.size()) {
    const json* index = member(delta, "index");
    calls_.push_back(ToolCall{string_member(delta, "id"), name, ""});
    chat_indexes_.push_back(index != nullptr && index->is_number_integer() ? index->get<std::int64_t>() : -1);
    pieces.push_back(StreamPiece{StreamPiece::Kind::tool_call_started, slot, ""});
  } else {
    // A name or id sent after the first fragment fills in what was missing.
    if (calls_[slot].id.empty()) calls_[slot].id = string_member(delta, "id");
    if (calls_[slot].name.empty()) calls_[slot].name = name;
  }
  if (!fragment.empty()) {
    calls_[slot].arguments += fragment;
    pieces.push_back(StreamPiece{StreamPiece::Kind::tool_call_arguments, slot, fragment});
  }
}

// The position of the call `delta` continues; calls_.size() for a new one.
std::size_t ChatStreamReader::slot_of(const json& delta) {
  if (const json* index = member(delta, "index"); index != nullptr && index->is_number_integer()) {
    const auto wanted = index->get<std::int64_t>();
    for (std::size_t i = 0; i < chat_indexes_.size(); ++i) {
      if (chat_indexes_[i] == wanted) return i;
    }
    return calls_.size();
  }
  if (const std::string id = string_member(delta, "id"); !id.empty()) {
    for (std::size_t i = 0; i < calls_.size(); ++i) {
      if (calls_[i].id == id) return i;
    }
    return calls_.size();
  }
  return calls_.empty() ? 0 : calls_.size() - 1;
}

}  // namespace coordinator::translate
