// Anthropic Messages <-> chat. Checked in the real child: models/chat.py
// (`max_output_tokens` not `max_tokens`; `stop` as a list; `reasoning_effort`),
// browser_utils/thinking_normalizer.py (an int budget, 0 = no thinking, -1 =
// unlimited), utils_ext/prompts.py (`tool` messages, assistant `tool_calls`),
// function_calling.py (tool_choice "auto"/"none"/"required"/{"type":"function",...}),
// response_generators.py (whole tool calls per chunk; usage in the last chunk).
//
// `thinking` is mapped to reasoning_effort (enabled: its budget_tokens,
// disabled: 0, adaptive: -1). The child's thinking is not returned as thinking
// blocks: its non-streamed answer already merges it into the text, and a
// thinking block needs a signature only Anthropic can make. Thinking blocks in
// the history are skipped, as Anthropic itself drops earlier turns' thinking.
// Ignored as harmless: metadata, service_tier, cache_control, citations on text
// blocks, context_management.
#include "coordinator/translate/anthropic_api.hpp"

#include <tuple>
#include <vector>

namespace coordinator::translate::anthropic {

namespace {

using nlohmann::json;

std::string at(const std::string& path, std::size_t index) {
  return path + "." + std::to_string(index);
}

// Anthropic's messages name the field first: "messages.0.content.1: ...".
ProtocolError refused(const std::string& path, const std::string& why) {
  return invalid_request(path, path + ": " + why);
}

ProtocolError unsupported_block(const std::string& path, const std::string& type) {
  return refused(path + ".type",
                 "content blocks of type '" + type + "' are not supported: the backend takes text only.");
}

// The text of a {"type": "text", "text": "..."} block; null for any other block.
const json* text_block(const json& block) {
  const json* text = string_member(block, "type") == "text" ? member(block, "text") : nullptr;
  return text != nullptr && text->is_string() ? text : nullptr;
}

// `system` or a tool_result's content: a string or a list of text blocks.
Result<std::string> text_of(const json& content, const std::string& path) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return refused(path, "must be a string or a list of text blocks.");
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const std::string type = string_member(content[i], "type");
    if (type != "text") return unsupported_block(at(path, i), type);
    const json* block_text = member(content[i], "text");
    if (block_text == nullptr || !block_text->is_string()) return refused(at(path, i) + ".text", "must be a string.");
    if (!text.empty()) text += "\n";
    text += block_text->get<std::string>();
  }
  return text;
}

std::optional<ProtocolError> add_tool_result(const json& block, const std::string& path, ChatMessages& messages) {
  const std::string call_id = string_member(block, "tool_use_id");
  if (call_id.empty()) return refused(path + ".tool_use_id", "is required.");
  const json* content = member(block, "content");
  Result<std::string> text = text_of(content != nullptr ? *content : json(""), path + ".content");
  if (!text.ok()) return text.error();
  // The chat API has no error flag on a tool result: the text says it.
  const json* is_error = member(block, "is_error");
  messages.add_tool_result(call_id, (is_error != nullptr && *is_error == true ? "Error: " : "") + text.value());
  return std::nullopt;
}

// Tool results go first (each answers the assistant's call just before), then
// the user's text, as Anthropic requires tool_result blocks to lead the message.
std::optional<ProtocolError> add_user_message(const json& content, const std::string& path, ChatMessages& messages) {
  if (content.is_string()) {
    messages.add_user(content.get<std::string>());
    return std::nullopt;
  }
  std::string text;
  bool had_tool_results = false;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const std::string type = string_member(content[i], "type");
    if (type == "tool_result") {
      if (auto failed = add_tool_result(content[i], at(path, i), messages)) return failed;
      had_tool_results = true;
    } else if (const json* block_text = text_block(content[i])) {
      if (!text.empty()) text += "\n";
      text += block_text->get<std::string>();
    } else {
      return unsupported_block(at(path, i), type);
    }
  }
  if (!text.empty() || !had_tool_results) messages.add_user(std::move(text));
  return std::nullopt;
}

std::optional<ProtocolError> add_assistant_message(const json& content, const std::string& path,
                                                   ChatMessages& messages) {
  if (content.is_string()) {
    messages.add_assistant_text(content.get<std::string>());
    return std::nullopt;
  }
  std::string text;
  std::vector<ToolCall> calls;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const std::string type = string_member(content[i], "type");
    if (const json* block_text = text_block(content[i])) {
      if (!text.empty()) text += "\n";
      text += block_text->get<std::string>();
    } else if (type == "tool_use") {
      const json* input = member(content[i], "input");
      ToolCall call{string_member(content[i], "id"), string_member(content[i], "name"), ""};
      if (call.id.empty() || call.name.empty() || (input != nullptr && !input->is_object())) {
        return refused(at(path, i), "a tool_use block needs an id, a name and an input object.");
      }
      call.arguments = input != nullptr ? dump(*input) : "{}";
      calls.push_back(std::move(call));
    } else if (type != "thinking" && type != "redacted_thinking") {
      return unsupported_block(at(path, i), type);
    }
  }
  if (!text.empty() || calls.empty()) messages.add_assistant_text(std::move(text));
  for (ToolCall& call : calls) messages.add_assistant_tool_call(call.id, call.name, call.arguments);
  return std::nullopt;
}

std::optional<ProtocolError> add_messages(const json& request, ChatMessages& messages) {
  if (const json* system = member(request, "system")) {
    Result<std::string> text = text_of(*system, "system");
    if (!text.ok()) return text.error();
    messages.add_system(text.value());
  }
  const json* list = member(request, "messages");
  if (list == nullptr || !list->is_array() || list->empty())
    return refused("messages", "a non-empty list is required.");
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string path = at("messages", i);
    const json& message = (*list)[i];
    const json* content = member(message, "content");
    if (content == nullptr || !(content->is_string() || content->is_array())) {
      return refused(path + ".content", "must be a string or a list of content blocks.");
    }
    const std::string role = string_member(message, "role");
    std::optional<ProtocolError> failed;
    if (role == "user") {
      failed = add_user_message(*content, path + ".content", messages);
    } else if (role == "assistant") {
      failed = add_assistant_message(*content, path + ".content", messages);
    } else {
      failed = refused(path + ".role", "must be user or assistant.");
    }
    if (failed) return failed;
  }
  if (!messages.has_conversation()) return refused("messages", "no user or assistant content.");
  return std::nullopt;
}

Result<json> chat_tools(const json& tools) {
  if (!tools.is_array()) return refused("tools", "must be a list.");
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const std::string path = at("tools", i);
    if (member(tools[i], "type") != nullptr && string_member(tools[i], "type") != "custom") {
      return refused(path + ".type", "server tools ('" + string_member(tools[i], "type") +
                                         "') are not supported: only client tools with an input_schema are.");
    }
    const std::string name = string_member(tools[i], "name");
    const json* schema = member(tools[i], "input_schema");
    if (name.empty()) return refused(path + ".name", "is required.");
    if (schema == nullptr || !schema->is_object()) return refused(path + ".input_schema", "an object is required.");
    json function = {{"name", name}, {"parameters", *schema}};
    if (const std::string description = string_member(tools[i], "description"); !description.empty()) {
      function["description"] = description;
    }
    out.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  return out;
}

std::optional<ProtocolError> copy_tool_choice(const json& choice, json& chat) {
  const std::string type = string_member(choice, "type");
  if (type == "auto" || type == "none") {
    chat["tool_choice"] = type;
  } else if (type == "any") {
    chat["tool_choice"] = "required";
  } else if (type == "tool" && !string_member(choice, "name").empty()) {
    chat["tool_choice"] = {{"type", "function"}, {"function", {{"name", string_member(choice, "name")}}}};
  } else {
    return refused("tool_choice", "type must be auto, any, none, or tool with a name.");
  }
  if (const json* serial = member(choice, "disable_parallel_tool_use")) {
    if (!serial->is_boolean()) return refused("tool_choice.disable_parallel_tool_use", "must be a boolean.");
    if (*serial == true) chat["parallel_tool_calls"] = false;
  }
  return std::nullopt;
}

std::optional<ProtocolError> copy_thinking(const json& thinking, json& chat) {
  const std::string type = string_member(thinking, "type");
  if (type == "disabled") {
    chat["reasoning_effort"] = 0;
  } else if (type == "adaptive") {
    chat["reasoning_effort"] = -1;
  } else if (type == "enabled") {
    const json* budget = member(thinking, "budget_tokens");
    if (auto failed =
            copy_field(budget, "thinking.budget_tokens", FieldKind::positive_integer, chat, "reasoning_effort")) {
      return failed;
    }
    if (budget == nullptr) return refused("thinking.budget_tokens", "is required.");
  } else {
    return refused("thinking.type", "must be enabled, disabled or adaptive.");
  }
  return std::nullopt;
}

// What the backend cannot do at all.
std::optional<ProtocolError> refuse_unsupported(const json& request) {
  if (member(request, "top_k") != nullptr)
    return refused("top_k", "is not supported: the backend has no top-k setting.");
  if (member(request, "container") != nullptr) return refused("container", "is not supported: no code execution here.");
  if (const json* servers = member(request, "mcp_servers"); servers != nullptr && !servers->empty()) {
    return refused("mcp_servers", "are not supported: the backend connects to no MCP server.");
  }
  return std::nullopt;
}

std::optional<ProtocolError> copy_settings(const json& request, json& chat) {
  const std::tuple<const char*, FieldKind, const char*> copied[] = {
      {"max_tokens", FieldKind::positive_integer, "max_output_tokens"},
      {"temperature", FieldKind::number, "temperature"},
      {"top_p", FieldKind::number, "top_p"},
      {"stop_sequences", FieldKind::string_list, "stop"},
      {"stream", FieldKind::boolean, "stream"}};
  for (const auto& [field, kind, chat_field] : copied) {
    if (auto failed = copy_field(member(request, field), field, kind, chat, chat_field)) return failed;
  }
  if (const json* tools = member(request, "tools")) {
    Result<json> translated = chat_tools(*tools);
    if (!translated.ok()) return translated.error();
    if (!translated.value().empty()) chat["tools"] = std::move(translated.value());
  }
  if (const json* choice = member(request, "tool_choice")) {
    if (auto failed = copy_tool_choice(*choice, chat)) return failed;
  }
  if (const json* thinking = member(request, "thinking")) return copy_thinking(*thinking, chat);
  return std::nullopt;
}

Result<json> translate(const json& request, const Options& options, bool max_tokens_required) {
  if (!request.is_object()) return refused("body", "must be a JSON object.");
  const json* model = member(request, "model");
  if (model == nullptr || !model->is_string()) return refused("model", "Field required (a string).");
  if (max_tokens_required && member(request, "max_tokens") == nullptr) return refused("max_tokens", "Field required.");
  if (auto failed = refuse_unsupported(request)) return *failed;
  ChatMessages messages;
  if (auto failed = add_messages(request, messages)) return *failed;
  json chat = {{"model", resolve_model(model->get<std::string>(), options)}, {"messages", messages.take()}};
  if (auto failed = copy_settings(request, chat)) return *failed;
  return chat;
}

const char* stop_reason(const std::string& finish_reason, bool has_tool_calls, const std::string& stop_sequence) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || has_tool_calls) return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  // The chat API does not say which stop sequence ended the answer (the real
  // child never does): only a backend that names it gets stop_sequence.
  return stop_sequence.empty() ? "end_turn" : "stop_sequence";
}

json tool_use_block(const ToolCall& call, const Options& options, std::size_t position) {
  return {{"type", "tool_use"},
          {"id", tool_call_id(call, options, position)},
          {"name", call.name},
          {"input", arguments_object(call.arguments)}};
}

std::string event(const char* type, json data) {
  data["type"] = type;
  return sse_event(type, data);
}

const char* error_type(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    case 504:
      return "timeout_error";
    default:
      return "api_error";
  }
}

}  // namespace

Result<json> to_chat_request(const json& request, const Options& options) {
  return translate(request, options, true);
}

Result<json> count_tokens(const json& request, const Options& options) {
  Result<json> chat = translate(request, options, false);
  if (!chat.ok()) return chat.error();
  return json{{"input_tokens", estimate_prompt_tokens(chat.value())}, {"estimated", true}};
}

Result<json> from_chat_answer(const json& request, const json& chat_answer, const Options& options) {
  Result<ChatAnswer> read = read_chat_answer(chat_answer);
  if (!read.ok()) return read.error();
  const ChatAnswer& answer = read.value();
  json content = json::array();
  if (!answer.text.empty()) content.push_back({{"type", "text"}, {"text", answer.text}});
  for (std::size_t i = 0; i < answer.tool_calls.size(); ++i) {
    content.push_back(tool_use_block(answer.tool_calls[i], options, i));
  }
  const Usage usage = answer.usage.value_or(Usage{});
  return json{{"id", "msg_" + options.id_base},
              {"type", "message"},
              {"role", "assistant"},
              {"model", string_member(request, "model")},
              {"content", std::move(content)},
              {"stop_reason", stop_reason(answer.finish_reason, !answer.tool_calls.empty(), answer.stop_sequence)},
              {"stop_sequence", answer.stop_sequence.empty() ? json(nullptr) : json(answer.stop_sequence)},
              {"usage", {{"input_tokens", usage.prompt_tokens}, {"output_tokens", usage.completion_tokens}}}};
}

json error_body(const ProtocolError& error) {
  return {{"type", "error"}, {"error", {{"type", error_type(error.status)}, {"message", error.message}}}};
}

json error_body(int status, std::string_view message) {
  ProtocolError error;
  error.status = status;
  error.message = std::string(message);
  return error_body(error);
}

// --- the stream ----------------------------------------------------------------

Stream::Stream(const json& request, Options options)
    : options_(std::move(options)), model_(string_member(request, "model")) {}

std::string Stream::start() {
  if (started_) return {};
  started_ = true;
  // Input tokens are known only from the child's last chunk: message_delta carries them.
  return event("message_start", {{"message",
                                  {{"id", "msg_" + options_.id_base},
                                   {"type", "message"},
                                   {"role", "assistant"},
                                   {"model", model_},
                                   {"content", json::array()},
                                   {"stop_reason", nullptr},
                                   {"stop_sequence", nullptr},
                                   {"usage", {{"input_tokens", 0}, {"output_tokens", 0}}}}}});
}

std::string Stream::on_chunk(const json& chunk) {
  if (ended_) return {};
  std::string out = start();
  for (StreamPiece& piece : reader_.read(chunk)) {
    switch (piece.kind) {
      case StreamPiece::Kind::text:
        if (open_ != OpenBlock::text) out += open_block(OpenBlock::text, 0);
        out += event("content_block_delta", {{"index", next_block_index_ - 1},
                                             {"delta", {{"type", "text_delta"}, {"text", std::move(piece.text)}}}});
        break;
      case StreamPiece::Kind::tool_call_started:
        out += open_block(OpenBlock::tool_use, piece.call);
        break;
      case StreamPiece::Kind::tool_call_arguments:
        // A block once stopped cannot take more: interleaved calls (which
        // neither OpenAI nor the child send) lose their late fragments.
        if (open_ == OpenBlock::tool_use && open_call_ == piece.call) {
          out += event("content_block_delta",
                       {{"index", next_block_index_ - 1},
                        {"delta", {{"type", "input_json_delta"}, {"partial_json", std::move(piece.text)}}}});
        }
        break;
      case StreamPiece::Kind::error:
        return out + on_error(502, piece.text);
    }
  }
  return out;
}

std::string Stream::open_block(OpenBlock kind, std::size_t call) {
  std::string out = close_block();
  open_ = kind;
  open_call_ = call;
  json block = {{"type", "text"}, {"text", ""}};
  if (kind == OpenBlock::tool_use) {
    const ToolCall& tool = reader_.tool_calls()[call];
    block = {{"type", "tool_use"},
             {"id", tool_call_id(tool, options_, call)},
             {"name", tool.name},
             {"input", json::object()}};
  }
  out += event("content_block_start", {{"index", next_block_index_++}, {"content_block", std::move(block)}});
  return out;
}

std::string Stream::close_block() {
  if (open_ == OpenBlock::none) return {};
  open_ = OpenBlock::none;
  return event("content_block_stop", {{"index", next_block_index_ - 1}});
}

std::string Stream::finish() {
  if (ended_) return {};
  std::string out = start();
  out += close_block();
  ended_ = true;
  const Usage usage = reader_.usage().value_or(Usage{});
  out += event("message_delta",
               {{"delta",
                 {{"stop_reason", stop_reason(reader_.finish_reason(), !reader_.tool_calls().empty(), "")},
                  {"stop_sequence", nullptr}}},
                {"usage", {{"input_tokens", usage.prompt_tokens}, {"output_tokens", usage.completion_tokens}}}});
  out += event("message_stop", json::object());
  return out;
}

std::string Stream::on_error(int status, std::string_view message) {
  if (ended_) return {};
  std::string out = start();
  ended_ = true;
  return out + sse_event("error", error_body(status, message));
}

// Anthropic's SDKs skip `ping` at the SSE level, so it may come before message_start.
std::string Stream::keepalive() {
  return ended_ ? std::string{} : event("ping", json::object());
}

}  // namespace coordinator::translate::anthropic
