// Gemini generateContent <-> chat. Checked in the real child: models/chat.py
// (`max_output_tokens`, `stop`, `reasoning_effort` int budget / -1 / 0 or
// "low"/"high"), utils_ext/prompts.py (`tool` messages, assistant `tool_calls`
// with string arguments and an id), function_calling.py (it converts
// lower-case JSON-schema `parameters` itself and ignores non-function tools,
// refused here), response_generators.py (tool calls arrive whole: Gemini's
// whole functionCall parts lose nothing).
//
// Gemini history has no call ids: a functionCall gets "call_N" (N counts the
// calls in the request) and a functionResponse the oldest unanswered call of
// its name. Both camelCase and the proto's snake_case field names are read.
// Ignored as harmless: safetySettings (the AI Studio page keeps its own),
// labels, generationConfig.seed, mediaResolution, thinkingConfig.includeThoughts,
// model `thought` parts and thoughtSignature (earlier turns' thinking).
#include "coordinator/translate/gemini_api.hpp"

#include <deque>
#include <map>

namespace coordinator::translate::gemini {

namespace {

using nlohmann::json;

std::string at(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

ProtocolError invalid(const std::string& path, const std::string& why) {
  return invalid_request(path, "Invalid value at '" + path + "': " + why);
}

struct History {
  ChatMessages messages;
  std::map<std::string, std::deque<std::string>> unanswered_calls;  // by function name, oldest first
  std::size_t calls_seen = 0;
};

const json* text_part(const json& part) {
  const json* text = member(part, "text");
  return text != nullptr && text->is_string() ? text : nullptr;
}

void append_line(std::string& to, const std::string& text) {
  if (!to.empty()) to += "\n";
  to += text;
}

std::optional<ProtocolError> refuse_part(const json& part, const std::string& path) {
  for (const char* media : {"inlineData", "inline_data", "fileData", "file_data"}) {
    if (member(part, media) != nullptr)
      return invalid(path, std::string(media) + " parts are not supported: the backend takes text only.");
  }
  for (const char* code : {"executableCode", "executable_code", "codeExecutionResult", "code_execution_result"}) {
    if (member(part, code) != nullptr)
      return invalid(path, std::string(code) + " parts are not supported: no code execution here.");
  }
  return invalid(path, "a part needs text, functionCall or functionResponse.");
}

std::optional<ProtocolError> add_model_content(const json& parts, const std::string& path, History& history) {
  std::string text;
  std::vector<ToolCall> calls;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (const json* part_text = text_part(parts[i])) {
      if (const json* thought = member(parts[i], "thought"); thought == nullptr || *thought != true) {
        append_line(text, part_text->get<std::string>());
      }
    } else if (const json* call = member(parts[i], "functionCall", "function_call")) {
      const json* args = member(*call, "args");
      ToolCall tool{string_member(*call, "id"), string_member(*call, "name"), args != nullptr ? dump(*args) : "{}"};
      if (tool.name.empty() || (args != nullptr && !args->is_object())) {
        return invalid(at(path, i) + ".functionCall", "needs a name and an args object.");
      }
      if (tool.id.empty()) tool.id = "call_" + std::to_string(history.calls_seen);
      ++history.calls_seen;
      history.unanswered_calls[tool.name].push_back(tool.id);
      calls.push_back(std::move(tool));
    } else {
      return refuse_part(parts[i], at(path, i));
    }
  }
  if (!text.empty() || calls.empty()) history.messages.add_assistant_text(std::move(text));
  for (ToolCall& call : calls) history.messages.add_assistant_tool_call(call.id, call.name, call.arguments);
  return std::nullopt;
}

std::optional<ProtocolError> add_user_content(const json& parts, const std::string& path, History& history) {
  std::string text;
  bool had_responses = false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (const json* part_text = text_part(parts[i])) {
      append_line(text, part_text->get<std::string>());
    } else if (const json* response = member(parts[i], "functionResponse", "function_response")) {
      const std::string name = string_member(*response, "name");
      if (name.empty()) return invalid(at(path, i) + ".functionResponse.name", "is required.");
      std::string id = string_member(*response, "id");
      auto& unanswered = history.unanswered_calls[name];
      if (id.empty()) id = unanswered.empty() ? "call_" + name : unanswered.front();
      if (!unanswered.empty() && unanswered.front() == id) unanswered.pop_front();
      const json* result = member(*response, "response");
      history.messages.add_tool_result(std::move(id), result != nullptr ? dump(*result) : "{}");
      had_responses = true;
    } else {
      return refuse_part(parts[i], at(path, i));
    }
  }
  if (!text.empty() || !had_responses) history.messages.add_user(std::move(text));
  return std::nullopt;
}

std::optional<ProtocolError> add_contents(const json& body, History& history) {
  const json* contents = member(body, "contents");
  if (contents == nullptr || !contents->is_array() || contents->empty()) {
    return invalid("contents", "a non-empty list is required.");
  }
  for (std::size_t i = 0; i < contents->size(); ++i) {
    const std::string path = at("contents", i);
    const json* parts = member((*contents)[i], "parts");
    if (parts == nullptr || !parts->is_array()) return invalid(path + ".parts", "a list is required.");
    const std::string role = string_member((*contents)[i], "role");
    std::optional<ProtocolError> failed;
    if (role.empty() || role == "user" || role == "function") {
      failed = add_user_content(*parts, path + ".parts", history);
    } else if (role == "model") {
      failed = add_model_content(*parts, path + ".parts", history);
    } else {
      failed = invalid(path + ".role", "must be user or model.");
    }
    if (failed) return failed;
  }
  return std::nullopt;
}

std::optional<ProtocolError> add_system(const json& body, History& history) {
  const json* system = member(body, "systemInstruction", "system_instruction");
  if (system == nullptr) return std::nullopt;
  const json* parts = member(*system, "parts");
  if (parts == nullptr || !parts->is_array()) return invalid("systemInstruction.parts", "a list is required.");
  std::string text;
  for (std::size_t i = 0; i < parts->size(); ++i) {
    const json* part_text = text_part((*parts)[i]);
    if (part_text == nullptr) return invalid(at("systemInstruction.parts", i), "only text parts are supported.");
    append_line(text, part_text->get<std::string>());
  }
  history.messages.add_system(text);
  return std::nullopt;
}

// Gemini's Schema names types in capitals ("OBJECT"); chat tools take JSON schema.
std::optional<ProtocolError> lower_case_types(json& schema, int depth) {
  if (depth > 64) return invalid("tools", "a parameters schema is nested too deeply.");
  if (schema.is_object()) {
    for (auto& [key, value] : schema.items()) {
      if (key == "type" && value.is_string()) {
        std::string type = value.get<std::string>();
        for (char& c : type) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        value = type;
      } else if (auto failed = lower_case_types(value, depth + 1)) {
        return failed;
      }
    }
  } else if (schema.is_array()) {
    for (json& item : schema) {
      if (auto failed = lower_case_types(item, depth + 1)) return failed;
    }
  }
  return std::nullopt;
}

Result<json> function_tool(const json& declaration, const std::string& path) {
  const std::string name = string_member(declaration, "name");
  if (name.empty()) return invalid(path + ".name", "is required.");
  json function = {{"name", name}};
  if (const std::string description = string_member(declaration, "description"); !description.empty()) {
    function["description"] = description;
  }
  if (const json* schema = member(declaration, "parametersJsonSchema", "parameters_json_schema")) {
    function["parameters"] = *schema;  // already JSON schema
  } else if (const json* parameters = member(declaration, "parameters")) {
    json converted = *parameters;
    if (auto failed = lower_case_types(converted, 0)) return *failed;
    function["parameters"] = std::move(converted);
  }
  return json{{"type", "function"}, {"function", std::move(function)}};
}

Result<json> chat_tools(const json& tools) {
  if (!tools.is_array()) return invalid("tools", "a list is required.");
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    if (!tools[i].is_object()) return invalid(at("tools", i), "an object is required.");
    for (const auto& [kind, value] : tools[i].items()) {
      if (kind != "functionDeclarations" && kind != "function_declarations") {
        return invalid(at("tools", i) + "." + kind,
                       "is not supported: only functionDeclarations are (the backend runs no Google tools).");
      }
      for (std::size_t k = 0; k < (value.is_array() ? value.size() : 0); ++k) {
        Result<json> tool = function_tool(value[k], at(at("tools", i) + ".functionDeclarations", k));
        if (!tool.ok()) return tool.error();
        out.push_back(std::move(tool.value()));
      }
    }
  }
  return out;
}

std::optional<ProtocolError> copy_tool_config(const json& body, json& chat) {
  const json* config = member(body, "toolConfig", "tool_config");
  const json* calling =
      config != nullptr ? member(*config, "functionCallingConfig", "function_calling_config") : nullptr;
  if (calling == nullptr) return std::nullopt;
  const std::string mode = string_member(*calling, "mode");
  const json* names = member(*calling, "allowedFunctionNames", "allowed_function_names");
  if (mode == "NONE") {
    chat["tool_choice"] = "none";
  } else if (mode == "ANY" && names != nullptr && names->is_array() && names->size() == 1 && (*names)[0].is_string()) {
    chat["tool_choice"] = {{"type", "function"}, {"function", {{"name", (*names)[0]}}}};
  } else if (mode == "ANY" && (names == nullptr || (names->is_array() && names->empty()))) {
    chat["tool_choice"] = "required";
  } else if (mode == "ANY") {
    return invalid("toolConfig.functionCallingConfig.allowedFunctionNames",
                   "more than one name is not supported: the backend can force one function, or any.");
  } else if (mode.empty() || mode == "AUTO" || mode == "MODE_UNSPECIFIED" || mode == "VALIDATED") {
    // VALIDATED: as AUTO; the backend cannot hold calls to their schema.
    chat["tool_choice"] = "auto";
  } else {
    return invalid("toolConfig.functionCallingConfig.mode", "must be AUTO, ANY, NONE or VALIDATED.");
  }
  return std::nullopt;
}

std::optional<ProtocolError> refuse_generation_settings(const json& config) {
  const std::pair<const char*, const char*> refused[] = {{"topK", "top_k"},
                                                         {"presencePenalty", "presence_penalty"},
                                                         {"frequencyPenalty", "frequency_penalty"},
                                                         {"responseSchema", "response_schema"},
                                                         {"responseJsonSchema", "response_json_schema"},
                                                         {"logprobs", "logprobs"},
                                                         {"speechConfig", "speech_config"}};
  for (const auto& [name, snake_name] : refused) {
    if (member(config, name, snake_name) != nullptr) {
      return invalid(std::string("generationConfig.") + name, "is not supported by the backend.");
    }
  }
  if (const json* logprobs = member(config, "responseLogprobs", "response_logprobs"); logprobs && *logprobs == true) {
    return invalid("generationConfig.responseLogprobs", "is not supported by the backend.");
  }
  if (const json* candidates = member(config, "candidateCount", "candidate_count"); candidates && *candidates != 1) {
    return invalid("generationConfig.candidateCount", "only 1 is supported: the backend makes one candidate.");
  }
  const json* mime = member(config, "responseMimeType", "response_mime_type");
  if (mime != nullptr && *mime != "text/plain") {
    return invalid("generationConfig.responseMimeType",
                   "only text/plain is supported: the backend cannot hold output to JSON.");
  }
  const json* modalities = member(config, "responseModalities", "response_modalities");
  if (modalities != nullptr && *modalities != json::array({"TEXT"})) {
    return invalid("generationConfig.responseModalities", "only [\"TEXT\"] is supported.");
  }
  return std::nullopt;
}

// thinkingBudget: -1 dynamic, 0 off, N tokens; thinkingLevel: low/high. The child reads the same scale.
std::optional<ProtocolError> copy_thinking(const json& config, json& chat) {
  const json* thinking = member(config, "thinkingConfig", "thinking_config");
  if (thinking == nullptr) return std::nullopt;
  if (const json* budget = member(*thinking, "thinkingBudget", "thinking_budget")) {
    if (!budget->is_number_integer() || *budget < -1) {
      return invalid("generationConfig.thinkingConfig.thinkingBudget", "must be -1, 0 or a token count.");
    }
    chat["reasoning_effort"] = *budget;
  } else if (const json* level = member(*thinking, "thinkingLevel", "thinking_level")) {
    std::string value = level->is_string() ? level->get<std::string>() : std::string{};
    for (char& c : value) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (value != "minimal" && value != "low" && value != "medium" && value != "high") {
      return invalid("generationConfig.thinkingConfig.thinkingLevel", "must be MINIMAL, LOW, MEDIUM or HIGH.");
    }
    chat["reasoning_effort"] = value == "minimal" ? "low" : value;
  }
  return std::nullopt;
}

std::optional<ProtocolError> copy_generation_config(const json& body, json& chat) {
  const json* config = member(body, "generationConfig", "generation_config");
  if (config == nullptr) return std::nullopt;
  if (!config->is_object()) return invalid("generationConfig", "an object is required.");
  if (auto failed = refuse_generation_settings(*config)) return failed;
  const std::tuple<const char*, const char*, FieldKind, const char*> copied[] = {
      {"temperature", "temperature", FieldKind::number, "temperature"},
      {"topP", "top_p", FieldKind::number, "top_p"},
      {"maxOutputTokens", "max_output_tokens", FieldKind::positive_integer, "max_output_tokens"},
      {"stopSequences", "stop_sequences", FieldKind::string_list, "stop"}};
  for (const auto& [name, snake_name, kind, chat_field] : copied) {
    const std::string path = std::string("generationConfig.") + name;
    if (auto failed = copy_field(member(*config, name, snake_name), path, kind, chat, chat_field)) return failed;
  }
  return copy_thinking(*config, chat);
}

const char* finish_reason(const std::string& chat_finish_reason) {
  if (chat_finish_reason == "length") return "MAX_TOKENS";
  if (chat_finish_reason == "content_filter") return "SAFETY";
  if (chat_finish_reason.empty() || chat_finish_reason == "stop" || chat_finish_reason == "tool_calls") return "STOP";
  return "OTHER";
}

json usage_metadata(const std::optional<Usage>& usage) {
  const Usage counts = usage.value_or(Usage{});
  return {{"promptTokenCount", counts.prompt_tokens},
          {"candidatesTokenCount", counts.completion_tokens},
          {"totalTokenCount", counts.total_tokens}};
}

json function_call_parts(const std::vector<ToolCall>& calls, const Options& options) {
  json parts = json::array();
  for (std::size_t i = 0; i < calls.size(); ++i) {
    parts.push_back({{"functionCall",
                      {{"id", tool_call_id(calls[i], options, i)},
                       {"name", calls[i].name},
                       {"args", arguments_object(calls[i].arguments)}}}});
  }
  return parts;
}

json response_chunk(json parts, std::string_view model, const Options& options) {
  return {{"candidates", {{{"content", {{"parts", std::move(parts)}, {"role", "model"}}}, {"index", 0}}}},
          {"modelVersion", model},
          {"responseId", options.id_base}};
}

const char* status_name(int status) {
  switch (status) {
    case 400:
      return "INVALID_ARGUMENT";
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "PERMISSION_DENIED";
    case 404:
      return "NOT_FOUND";
    case 409:
      return "ABORTED";
    case 413:
      return "INVALID_ARGUMENT";
    case 429:
      return "RESOURCE_EXHAUSTED";
    case 499:
      return "CANCELLED";
    case 501:
      return "UNIMPLEMENTED";
    case 502:
    case 503:
      return "UNAVAILABLE";
    case 504:
      return "DEADLINE_EXCEEDED";
    default:
      return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
}

}  // namespace

Result<json> to_chat_request(const json& body, std::string_view model, bool stream, const Options& options) {
  if (!body.is_object()) return invalid("body", "a GenerateContentRequest object is required.");
  if (member(body, "cachedContent", "cached_content") != nullptr) {
    return invalid("cachedContent", "is not supported: this server keeps no cached content.");
  }
  History history;
  if (auto failed = add_system(body, history)) return *failed;
  if (auto failed = add_contents(body, history)) return *failed;
  if (!history.messages.has_conversation()) return invalid("contents", "no user or model content.");
  json chat = {{"messages", history.messages.take()}, {"stream", stream}};
  if (!model.empty()) chat["model"] = resolve_model(model, options);
  if (auto failed = copy_generation_config(body, chat)) return *failed;
  if (const json* tools = member(body, "tools")) {
    Result<json> translated = chat_tools(*tools);
    if (!translated.ok()) return translated.error();
    if (!translated.value().empty()) chat["tools"] = std::move(translated.value());
  }
  if (auto failed = copy_tool_config(body, chat)) return *failed;
  return chat;
}

Result<json> from_chat_answer(std::string_view model, const json& chat_answer, const Options& options) {
  Result<ChatAnswer> read = read_chat_answer(chat_answer);
  if (!read.ok()) return read.error();
  const ChatAnswer& answer = read.value();
  json parts = function_call_parts(answer.tool_calls, options);
  if (!answer.text.empty() || parts.empty()) parts.insert(parts.begin(), json{{"text", answer.text}});
  json response = response_chunk(std::move(parts), model, options);
  response["candidates"][0]["finishReason"] = finish_reason(answer.finish_reason);
  response["usageMetadata"] = usage_metadata(answer.usage);
  return response;
}

json error_body(const ProtocolError& error) {
  return {{"error", {{"code", error.status}, {"message", error.message}, {"status", status_name(error.status)}}}};
}

json error_body(int status, std::string_view message) {
  ProtocolError error;
  error.status = status;
  error.message = std::string(message);
  return error_body(error);
}

json model_info(std::string_view model_id) {
  const std::string_view bare = model_id.substr(model_id.rfind("models/", 0) == 0 ? 7 : 0);
  return {{"name", "models/" + std::string(bare)},
          {"displayName", bare},
          {"description", "Served through the coordinator's AI Studio children."},
          {"supportedGenerationMethods", {"generateContent", "streamGenerateContent"}}};
}

json models_list(const std::vector<std::string>& model_ids) {
  json models = json::array();
  for (const std::string& id : model_ids) models.push_back(model_info(id));
  return {{"models", std::move(models)}};
}

// --- the stream ----------------------------------------------------------------

Stream::Stream(std::string_view model, Options options) : options_(std::move(options)), model_(model) {}

std::string Stream::on_chunk(const json& chunk) {
  if (ended_) return {};
  std::string text;
  for (StreamPiece& piece : reader_.read(chunk)) {
    if (piece.kind == StreamPiece::Kind::error) {
      return (text.empty() ? std::string{}
                           : sse_data(response_chunk(json::array({{{"text", text}}}), model_, options_))) +
             on_error(502, piece.text);
    }
    // Tool calls go out whole in the last chunk, as Gemini sends functionCall parts.
    if (piece.kind == StreamPiece::Kind::text) text += piece.text;
  }
  if (text.empty()) return {};
  return sse_data(response_chunk(json::array({{{"text", std::move(text)}}}), model_, options_));
}

std::string Stream::finish() {
  if (ended_) return {};
  ended_ = true;
  json parts = function_call_parts(reader_.tool_calls(), options_);
  // No empty text part: a client that counts or joins parts must not see one more.
  // (Gemini itself ends streams with a chunk of finishReason and no new text.)
  json last = response_chunk(std::move(parts), model_, options_);
  last["candidates"][0]["finishReason"] = finish_reason(reader_.finish_reason());
  last["usageMetadata"] = usage_metadata(reader_.usage());
  return sse_data(last);
}

std::string Stream::on_error(int status, std::string_view message) {
  if (ended_) return {};
  ended_ = true;
  return sse_data(error_body(status, message));
}

}  // namespace coordinator::translate::gemini
