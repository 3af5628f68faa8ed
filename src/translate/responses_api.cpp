// Responses API <-> chat. Checked in the real child: models/chat.py (it reads
// `max_output_tokens`, never `max_tokens`, which pydantic drops; `stop`, `tools`,
// `tool_choice`, `reasoning_effort`, `parallel_tool_calls`), utils_ext/prompts.py
// (one string system message; `tool` messages; assistant `tool_calls` with string
// arguments), response_generators.py (text deltas, whole tool calls in one chunk,
// finish_reason with usage in the last chunk), function_calling.py (it ignores
// non-function tools, so they are refused here).
//
// Ignored, as harmless to a stateless text backend: metadata, user,
// safety_identifier, prompt_cache_key, prompt_cache_retention, service_tier,
// truncation, include, stream_options, top_logprobs, max_tool_calls,
// reasoning.summary, text.verbosity, and a function tool's `strict` (the model
// still gets the schema; the backend cannot constrain decoding to it).
#include "coordinator/translate/responses_api.hpp"

namespace coordinator::translate::responses {

namespace {

using nlohmann::json;

ProtocolError unsupported(std::string param, std::string message) {
  ProtocolError error = invalid_request(std::move(param), std::move(message));
  error.code = "unsupported_parameter";
  return error;
}

std::string indexed(const std::string& param, std::size_t index) {
  return param + "[" + std::to_string(index) + "]";
}

// This server keeps nothing between requests: whatever needs stored state is refused.
std::optional<ProtocolError> refuse_server_state(const json& request) {
  constexpr const char* kStateless =
      " is not supported: this server stores no responses or conversations; "
      "send the whole conversation in input.";
  if (const json* store = member(request, "store"); store != nullptr && *store == true) {
    return unsupported("store", std::string("store: true") + kStateless + " Send store: false or omit it.");
  }
  for (const char* field : {"previous_response_id", "conversation"}) {
    if (member(request, field) != nullptr) return unsupported(field, field + std::string(kStateless));
  }
  if (const json* background = member(request, "background"); background != nullptr && *background == true) {
    return unsupported("background", "background: true is not supported: responses are answered while you wait.");
  }
  if (member(request, "prompt") != nullptr) {
    return unsupported("prompt", "prompt (stored prompt templates) is not supported: send instructions and input.");
  }
  return std::nullopt;
}

// The child only echoes response_format: it cannot hold its output to a schema.
std::optional<ProtocolError> check_text_format(const json& request) {
  const json* text = member(request, "text");
  const json* format = text != nullptr ? member(*text, "format") : nullptr;
  if (format == nullptr || string_member(*format, "type") == "text") return std::nullopt;
  return unsupported("text.format", "text.format of type '" + string_member(*format, "type") +
                                        "' is not supported: the backend produces plain text only.");
}

// A message's content: a string or a list of text parts, joined as the child joins them.
Result<std::string> content_text(const json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return invalid_request(param, param + " must be a string or a list of content parts.");
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const std::string type = string_member(content[i], "type");
    const char* text_field = type == "input_text" || type == "output_text" ? "text"
                             : type == "refusal"                           ? "refusal"
                                                                           : nullptr;
    if (text_field == nullptr) {
      return unsupported(indexed(param, i) + ".type",
                         "Content parts of type '" + type + "' are not supported: the backend takes text only.");
    }
    const json* part_text = member(content[i], text_field);
    if (part_text == nullptr || !part_text->is_string()) {
      return invalid_request(indexed(param, i), indexed(param, i) + "." + text_field + " must be a string.");
    }
    if (!text.empty()) text += "\n";
    text += part_text->get<std::string>();
  }
  return text;
}

std::optional<ProtocolError> add_message_item(const json& item, const std::string& param, ChatMessages& messages) {
  const json* content = member(item, "content");
  if (content == nullptr) return invalid_request(param + ".content", param + ".content is required.");
  Result<std::string> text = content_text(*content, param + ".content");
  if (!text.ok()) return text.error();
  const std::string role = string_member(item, "role");
  if (role == "user") {
    messages.add_user(std::move(text.value()));
  } else if (role == "assistant") {
    messages.add_assistant_text(std::move(text.value()));
  } else if (role == "system" || role == "developer") {
    // Merged into the one leading system message: the child reads no other.
    messages.add_system(text.value());
  } else {
    return invalid_request(param + ".role", param + ".role must be user, assistant, system or developer.");
  }
  return std::nullopt;
}

std::optional<ProtocolError> add_input_item(const json& item, const std::string& param, ChatMessages& messages) {
  if (!item.is_object()) return invalid_request(param, param + " must be an object.");
  const std::string type = member(item, "type") != nullptr ? string_member(item, "type") : "message";
  if (type == "message") return add_message_item(item, param, messages);
  if (type == "function_call" || type == "function_call_output") {
    const std::string call_id = string_member(item, "call_id");
    if (call_id.empty()) return invalid_request(param + ".call_id", param + ".call_id is required.");
    if (type == "function_call_output") {
      const json* output = member(item, "output");
      Result<std::string> text = content_text(output != nullptr ? *output : json(""), param + ".output");
      if (!text.ok()) return text.error();
      messages.add_tool_result(call_id, std::move(text.value()));
      return std::nullopt;
    }
    const json* arguments = member(item, "arguments");
    const std::string name = string_member(item, "name");
    if (name.empty() || (arguments != nullptr && !arguments->is_string())) {
      return invalid_request(param, param + ": a function_call needs a name and string arguments.");
    }
    messages.add_assistant_tool_call(call_id, name, arguments != nullptr ? arguments->get<std::string>() : "{}");
    return std::nullopt;
  }
  // An earlier turn's reasoning is context only OpenAI's servers can read
  // (encrypted); the backend reasons afresh, so the item is skipped.
  if (type == "reasoning") return std::nullopt;
  return unsupported(param + ".type", "Input items of type '" + type +
                                          "' are not supported: only messages, function_call and "
                                          "function_call_output items are (nothing is stored, no hosted tools).");
}

std::optional<ProtocolError> add_input(const json& request, ChatMessages& messages) {
  const json* input = member(request, "input");
  if (input == nullptr) return invalid_request("input", "input is required.");
  if (input->is_string()) {
    messages.add_user(input->get<std::string>());
    return std::nullopt;
  }
  if (!input->is_array()) return invalid_request("input", "input must be a string or a list of items.");
  for (std::size_t i = 0; i < input->size(); ++i) {
    if (auto failed = add_input_item((*input)[i], indexed("input", i), messages)) return failed;
  }
  return std::nullopt;
}

Result<json> chat_tools(const json& tools) {
  if (!tools.is_array()) return invalid_request("tools", "tools must be a list.");
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const std::string param = indexed("tools", i);
    const std::string type = string_member(tools[i], "type");
    if (type != "function") {
      return unsupported(param + ".type", "Tools of type '" + type +
                                              "' are not supported: only function tools are (the backend runs no "
                                              "hosted tools).");
    }
    const std::string name = string_member(tools[i], "name");
    if (name.empty()) return invalid_request(param + ".name", param + ".name is required.");
    json function = {{"name", name}};
    if (const json* description = member(tools[i], "description"); description != nullptr && description->is_string()) {
      function["description"] = *description;
    }
    if (const json* parameters = member(tools[i], "parameters")) {
      if (!parameters->is_object()) return invalid_request(param + ".parameters", "parameters must be a JSON schema.");
      function["parameters"] = *parameters;
    }
    out.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  return out;
}

Result<json> chat_tool_choice(const json& choice) {
  if (choice.is_string() && (choice == "auto" || choice == "none" || choice == "required")) return choice;
  if (string_member(choice, "type") == "function" && !string_member(choice, "name").empty()) {
    return json{{"type", "function"}, {"function", {{"name", string_member(choice, "name")}}}};
  }
  return unsupported("tool_choice",
                     "tool_choice must be auto, none, required or {\"type\": \"function\", \"name\": ...}: "
                     "allowed_tools and hosted tools are not supported.");
}

// reasoning.effort -> the child's reasoning_effort. The child reads "none" as an
// unlimited budget and 0 as no thinking, so OpenAI's "none" goes as 0.
std::optional<ProtocolError> copy_reasoning(const json& request, json& chat) {
  const json* reasoning = member(request, "reasoning");
  const json* effort = reasoning != nullptr ? member(*reasoning, "effort") : nullptr;
  if (effort == nullptr) return std::nullopt;
  const std::string value = effort->is_string() ? effort->get<std::string>() : std::string{};
  if (value == "none") {
    chat["reasoning_effort"] = 0;
  } else if (value == "minimal" || value == "low" || value == "medium" || value == "high") {
    chat["reasoning_effort"] = value == "minimal" ? "low" : value;
  } else {
    return invalid_request("reasoning.effort", "reasoning.effort must be none, minimal, low, medium or high.");
  }
  return std::nullopt;
}

std::optional<ProtocolError> copy_settings(const json& request, const Options& options, json& chat) {
  if (const json* model = member(request, "model")) {
    if (!model->is_string()) return invalid_request("model", "model must be a string.");
    chat["model"] = resolve_model(model->get<std::string>(), options);
  }
  const std::pair<const char*, FieldKind> copied[] = {{"stream", FieldKind::boolean},
                                                      {"max_output_tokens", FieldKind::positive_integer},
                                                      {"temperature", FieldKind::number},
                                                      {"top_p", FieldKind::number},
                                                      {"parallel_tool_calls", FieldKind::boolean}};
  for (const auto& [field, kind] : copied) {
    if (auto failed = copy_field(member(request, field), field, kind, chat, field)) return failed;
  }
  if (const json* tools = member(request, "tools")) {
    Result<json> translated = chat_tools(*tools);
    if (!translated.ok()) return translated.error();
    if (!translated.value().empty()) chat["tools"] = std::move(translated.value());
  }
  if (const json* choice = member(request, "tool_choice")) {
    Result<json> translated = chat_tool_choice(*choice);
    if (!translated.ok()) return translated.error();
    chat["tool_choice"] = std::move(translated.value());
  }
  return copy_reasoning(request, chat);
}

// --- answers -----------------------------------------------------------------

// The request's settings, as every response object repeats them.
json echo_of(const json& request) {
  const auto field = [&request](const char* key, json fallback) {
    const json* value = member(request, key);
    return value != nullptr ? *value : fallback;
  };
  const json* reasoning = member(request, "reasoning");
  const json* effort = reasoning != nullptr ? member(*reasoning, "effort") : nullptr;
  return {{"object", "response"},
          {"model", field("model", nullptr)},
          {"instructions", field("instructions", nullptr)},
          {"max_output_tokens", field("max_output_tokens", nullptr)},
          {"temperature", field("temperature", nullptr)},
          {"top_p", field("top_p", nullptr)},
          {"tools", field("tools", json::array())},
          {"tool_choice", field("tool_choice", "auto")},
          {"parallel_tool_calls", field("parallel_tool_calls", true)},
          {"metadata", field("metadata", json::object())},
          {"text", field("text", {{"format", {{"type", "text"}}}})},
          {"truncation", field("truncation", "disabled")},
          {"reasoning", {{"effort", effort != nullptr ? *effort : json(nullptr)}, {"summary", nullptr}}},
          {"store", false},  // nothing is stored, whatever was asked
          {"background", false},
          {"previous_response_id", nullptr}};
}

json usage_json(const std::optional<Usage>& usage) {
  if (!usage) return nullptr;
  return {{"input_tokens", usage->prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", 0}}},
          {"output_tokens", usage->completion_tokens},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", usage->total_tokens}};
}

json response_object(const json& echo, const Options& options, const char* status, json output,
                     const std::optional<Usage>& usage) {
  json response = echo;
  response["id"] = "resp_" + options.id_base;
  response["created_at"] = options.created;
  response["status"] = status;
  response["error"] = nullptr;
  response["incomplete_details"] = nullptr;
  response["output"] = std::move(output);
  response["usage"] = usage_json(usage);
  return response;
}

// An answer cut short is `incomplete`, saying why; nullptr for a whole one.
const char* incomplete_reason(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_output_tokens";
  if (finish_reason == "content_filter") return "content_filter";
  return nullptr;
}

std::string item_id(const char* prefix, const Options& options, std::size_t output_index) {
  return std::string(prefix) + "_" + options.id_base + "_" + std::to_string(output_index);
}

json output_text_part(std::string text) {
  return {{"type", "output_text"}, {"text", std::move(text)}, {"annotations", json::array()}};
}

json message_item(std::string id, const char* status) {
  return {{"id", std::move(id)},
          {"type", "message"},
          {"status", status},
          {"role", "assistant"},
          {"content", json::array()}};
}

json function_call_item(std::string id, const ToolCall& call, std::string call_id, const char* status) {
  return {{"id", std::move(id)},           {"type", "function_call"}, {"status", status},
          {"call_id", std::move(call_id)}, {"name", call.name},       {"arguments", call.arguments}};
}

const char* error_type(int status) {
  switch (status) {
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_exceeded";
    case 502:
      return "upstream_error";
    case 503:
      return "service_unavailable";
    case 504:
      return "timeout";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

Result<json> to_chat_request(const json& request, const Options& options) {
  if (!request.is_object()) return invalid_request("", "The request body must be a JSON object.");
  if (auto refused = refuse_server_state(request)) return *refused;
  if (auto refused = check_text_format(request)) return *refused;
  ChatMessages messages;
  if (const json* instructions = member(request, "instructions")) {
    if (!instructions->is_string()) return invalid_request("instructions", "instructions must be a string.");
    messages.add_system(instructions->get<std::string>());
  }
  if (auto failed = add_input(request, messages)) return *failed;
  if (!messages.has_conversation()) {
    return invalid_request("input", "input must hold at least one user or assistant message.");
  }
  json chat = {{"messages", messages.take()}};
  if (auto failed = copy_settings(request, options, chat)) return *failed;
  return chat;
}

Result<json> from_chat_answer(const json& request, const json& chat_answer, const Options& options) {
  Result<ChatAnswer> read = read_chat_answer(chat_answer);
  if (!read.ok()) return read.error();
  const ChatAnswer& answer = read.value();
  const char* why_incomplete = incomplete_reason(answer.finish_reason);
  json output = json::array();
  if (!answer.text.empty() || answer.tool_calls.empty()) {
    json item = message_item(item_id("msg", options, 0), why_incomplete != nullptr ? "incomplete" : "completed");
    item["content"].push_back(output_text_part(answer.text));
    output.push_back(std::move(item));
  }
  for (std::size_t i = 0; i < answer.tool_calls.size(); ++i) {
    const ToolCall& call = answer.tool_calls[i];
    output.push_back(
        function_call_item(item_id("fc", options, output.size()), call, tool_call_id(call, options, i), "completed"));
  }
  json response = response_object(echo_of(request), options, why_incomplete != nullptr ? "incomplete" : "completed",
                                  std::move(output), answer.usage);
  if (why_incomplete != nullptr) response["incomplete_details"] = {{"reason", why_incomplete}};
  return response;
}

json error_body(const ProtocolError& error) {
  return {{"error",
           {{"message", error.message},
            {"type", error_type(error.status)},
            {"param", error.param.empty() ? json(nullptr) : json(error.param)},
            {"code", error.code.empty() ? json(nullptr) : json(error.code)}}}};
}

json error_body(int status, std::string_view message) {
  ProtocolError error;
  error.status = status;
  error.message = std::string(message);
  return error_body(error);
}

// --- the stream ----------------------------------------------------------------

Stream::Stream(const json& request, Options options) : options_(std::move(options)), echo_(echo_of(request)) {}

std::string Stream::event(const char* type, json data) {
  data["type"] = type;
  data["sequence_number"] = sequence_number_++;
  return sse_event(type, data);
}

json Stream::response(const char* status) const {
  return response_object(echo_, options_, status, output_, reader_.usage());
}

std::string Stream::start() {
  if (started_) return {};
  started_ = true;
  std::string out = event("response.created", {{"response", response("in_progress")}});
  out += event("response.in_progress", {{"response", response("in_progress")}});
  return out;
}

std::string Stream::on_chunk(const json& chunk) {
  if (ended_) return {};
  std::string out = start();
  for (StreamPiece& piece : reader_.read(chunk)) {
    switch (piece.kind) {
      case StreamPiece::Kind::text:
        if (open_ != OpenItem::message) out += open_message();
        text_ += piece.text;
        out += event("response.output_text.delta", {{"item_id", open_item_id_},
                                                    {"output_index", output_.size()},
                                                    {"content_index", 0},
                                                    {"delta", std::move(piece.text)},
                                                    {"logprobs", json::array()}});
        break;
      case StreamPiece::Kind::tool_call_started:
        out += open_function_call(piece.call);
        break;
      case StreamPiece::Kind::tool_call_arguments:
        // A fragment of a call already closed (interleaved calls, which neither
        // OpenAI nor the child send) has no item left to go to.
        if (open_ == OpenItem::function_call && open_call_ == piece.call) {
          out +=
              event("response.function_call_arguments.delta",
                    {{"item_id", open_item_id_}, {"output_index", output_.size()}, {"delta", std::move(piece.text)}});
        }
        break;
      case StreamPiece::Kind::error:
        return out + on_error(502, piece.text);
    }
  }
  return out;
}

std::string Stream::open_message() {
  std::string out = close_open_item();
  open_ = OpenItem::message;
  open_item_id_ = item_id("msg", options_, output_.size());
  text_.clear();
  out += event("response.output_item.added",
               {{"output_index", output_.size()}, {"item", message_item(open_item_id_, "in_progress")}});
  out += event("response.content_part.added", {{"item_id", open_item_id_},
                                               {"output_index", output_.size()},
                                               {"content_index", 0},
                                               {"part", output_text_part("")}});
  return out;
}

std::string Stream::open_function_call(std::size_t call) {
  std::string out = close_open_item();
  open_ = OpenItem::function_call;
  open_call_ = call;
  open_item_id_ = item_id("fc", options_, output_.size());
  const ToolCall& tool = reader_.tool_calls()[call];
  json item = function_call_item(open_item_id_, tool, tool_call_id(tool, options_, call), "in_progress");
  item["arguments"] = "";  // its fragments follow as deltas
  out += event("response.output_item.added", {{"output_index", output_.size()}, {"item", std::move(item)}});
  return out;
}

std::string Stream::close_open_item() {
  if (open_ == OpenItem::none) return {};
  const std::size_t index = output_.size();
  std::string out;
  json item;
  if (open_ == OpenItem::message) {
    out += event("response.output_text.done", {{"item_id", open_item_id_},
                                               {"output_index", index},
                                               {"content_index", 0},
                                               {"text", text_},
                                               {"logprobs", json::array()}});
    out += event(
        "response.content_part.done",
        {{"item_id", open_item_id_}, {"output_index", index}, {"content_index", 0}, {"part", output_text_part(text_)}});
    item = message_item(open_item_id_, "completed");
    item["content"].push_back(output_text_part(text_));
  } else {
    const ToolCall& call = reader_.tool_calls()[open_call_];
    out += event(
        "response.function_call_arguments.done",
        {{"item_id", open_item_id_}, {"output_index", index}, {"name", call.name}, {"arguments", call.arguments}});
    item = function_call_item(open_item_id_, call, tool_call_id(call, options_, open_call_), "completed");
  }
  out += event("response.output_item.done", {{"output_index", index}, {"item", item}});
  output_.push_back(std::move(item));
  open_ = OpenItem::none;
  return out;
}

std::string Stream::finish() {
  if (ended_) return {};
  std::string out = start();
  out += close_open_item();
  ended_ = true;
  const char* why_incomplete = incomplete_reason(reader_.finish_reason());
  json final_response = response(why_incomplete != nullptr ? "incomplete" : "completed");
  if (why_incomplete != nullptr) final_response["incomplete_details"] = {{"reason", why_incomplete}};
  out += event(why_incomplete != nullptr ? "response.incomplete" : "response.completed",
               {{"response", std::move(final_response)}});
  return out;
}

std::string Stream::on_error(int status, std::string_view message) {
  if (ended_) return {};
  std::string out = start();
  ended_ = true;
  const char* code = error_type(status);
  out += event("error", {{"code", code}, {"message", message}, {"param", nullptr}});
  json failed = response("failed");
  failed["error"] = {{"code", code}, {"message", message}};
  out += event("response.failed", {{"response", std::move(failed)}});
  return out;
}

}  // namespace coordinator::translate::responses
