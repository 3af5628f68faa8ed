#include "coordinator/protocol_answer.hpp"

#include "coordinator/errors.hpp"
#include "coordinator/translate/anthropic_api.hpp"
#include "coordinator/translate/gemini_api.hpp"
#include "coordinator/translate/responses_api.hpp"

namespace coordinator {

namespace {

using nlohmann::json;

constexpr std::string_view kComment = ": keep-alive\n\n";
// A child line longer than this is no chat chunk: the stream ends with an error
// rather than holding an unbounded line.
constexpr std::size_t kMaxChildLine = std::size_t{16} * 1024 * 1024;

// The message of an OpenAI-shaped error body, else `fallback`.
std::string error_message(const json& body, std::string fallback) {
  const json* error = translate::member(body, "error");
  if (error == nullptr) return fallback;
  if (error->is_string()) return error->get<std::string>();
  std::string message = translate::string_member(*error, "message");
  return message.empty() ? fallback : message;
}

}  // namespace

ProtocolAnswer::ProtocolAnswer(ClientProtocol protocol, json client_request, std::string model,
                               translate::Options options)
    : protocol_(protocol),
      client_request_(std::move(client_request)),
      model_(std::move(model)),
      options_(std::move(options)) {}

std::string protocol_error_json(ClientProtocol protocol, const translate::ProtocolError& error) {
  switch (protocol) {
    case ClientProtocol::responses:
      return translate::dump(translate::responses::error_body(error));
    case ClientProtocol::anthropic:
      return translate::dump(translate::anthropic::error_body(error));
    case ClientProtocol::gemini:
      return translate::dump(translate::gemini::error_body(error));
  }
  return {};
}

std::string protocol_error_json(ClientProtocol protocol, unsigned status, std::string_view message,
                                std::string_view code) {
  return protocol_error_json(
      protocol, translate::ProtocolError{static_cast<int>(status), std::string(message), "", std::string(code)});
}

std::string ProtocolAnswer::error_json(unsigned status, std::string_view message, std::string_view code) const {
  return protocol_error_json(protocol_, status, message, code);
}

ProtocolAnswer::Whole ProtocolAnswer::whole(unsigned child_status, std::string_view child_body) const {
  const json body = json::parse(child_body, nullptr, /*allow_exceptions=*/false);
  if (child_status < 200 || child_status >= 300) {
    return {child_status,
            error_json(child_status, error_message(body, "The child answered " + std::to_string(child_status) + "."))};
  }
  if (body.is_discarded()) return {502, error_json(502, "The child's answer is not JSON.")};
  translate::Result<json> answer = [&]() -> translate::Result<json> {
    switch (protocol_) {
      case ClientProtocol::responses:
        return translate::responses::from_chat_answer(client_request_, body, options_);
      case ClientProtocol::anthropic:
        return translate::anthropic::from_chat_answer(client_request_, body, options_);
      case ClientProtocol::gemini:
        return translate::gemini::from_chat_answer(model_, body, options_);
    }
    return translate::ProtocolError{502, "unknown protocol", "", ""};
  }();
  if (!answer.ok()) {
    const unsigned status = static_cast<unsigned>(answer.error().status);
    return {status, error_json(status, answer.error().message)};
  }
  return {200, translate::dump(answer.value())};
}

translate::StreamTranslator& ProtocolAnswer::stream() {
  if (!stream_) {
    switch (protocol_) {
      case ClientProtocol::responses:
        stream_ = std::make_unique<translate::responses::Stream>(client_request_, options_);
        break;
      case ClientProtocol::anthropic:
        stream_ = std::make_unique<translate::anthropic::Stream>(client_request_, options_);
        break;
      case ClientProtocol::gemini:
        stream_ = std::make_unique<translate::gemini::Stream>(model_, options_);
        break;
    }
  }
  return *stream_;
}

std::string ProtocolAnswer::stream_from_whole(std::string_view child_body) {
  const json body = json::parse(child_body, nullptr, /*allow_exceptions=*/false);
  const translate::Result<translate::ChatAnswer> answer = translate::read_chat_answer(body);
  if (!answer.ok()) return stream_error(502, answer.error().message);
  const translate::ChatAnswer& chat = answer.value();
  // One chunk with everything the answer holds, as a stream would have carried it.
  json delta = {{"role", "assistant"}};
  if (!chat.text.empty()) delta["content"] = chat.text;
  if (!chat.tool_calls.empty()) {
    json calls = json::array();
    for (std::size_t i = 0; i < chat.tool_calls.size(); ++i) {
      const translate::ToolCall& call = chat.tool_calls[i];
      calls.push_back({{"index", i},
                       {"id", call.id},
                       {"type", "function"},
                       {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    delta["tool_calls"] = std::move(calls);
  }
  json choice = {{"index", 0}, {"delta", std::move(delta)}};
  choice["finish_reason"] = chat.finish_reason.empty() ? json(nullptr) : json(chat.finish_reason);
  json chunk = {{"object", "chat.completion.chunk"}, {"choices", json::array({std::move(choice)})}};
  if (chat.usage) {
    chunk["usage"] = {{"prompt_tokens", chat.usage->prompt_tokens},
                      {"completion_tokens", chat.usage->completion_tokens},
                      {"total_tokens", chat.usage->total_tokens}};
  }
  std::string out = stream_start();
  out += stream().on_chunk(chunk);
  out += stream_finish();
  return out;
}

std::string ProtocolAnswer::stream_start() {
  return stream().start();
}

// SSE as the child frames it (WHATWG: lines end in LF or CRLF; a blank line
// ends an event; `data:` lines join with LF; comments and other fields ignored).
std::string ProtocolAnswer::stream_bytes(std::string_view child_sse) {
  std::string out;
  while (!child_sse.empty() && !stream_done_) {
    const std::size_t newline = child_sse.find('\n');
    if (newline == std::string_view::npos) {
      partial_.append(child_sse);
      if (partial_.size() > kMaxChildLine) out += stream_error(502, "The child sent a stream line too long to read.");
      break;
    }
    std::string_view line = child_sse.substr(0, newline);
    child_sse.remove_prefix(newline + 1);
    if (!partial_.empty()) {
      partial_.append(line);
      const std::string whole_line = std::move(partial_);
      partial_.clear();
      out += stream_line(whole_line);
    } else {
      out += stream_line(line);
    }
  }
  return out;
}

std::string ProtocolAnswer::stream_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) {
    if (event_data_.empty()) return {};
    const std::string data = std::move(event_data_);
    event_data_.clear();
    return stream_event(data);
  }
  if (line.front() == ':') return keepalive();  // the child's own keep-alive
  if (!line.starts_with("data:")) return {};    // event:, id:, retry: carry nothing the translators need
  line.remove_prefix(5);
  if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (!event_data_.empty()) event_data_ += '\n';
  event_data_.append(line);
  return {};
}

std::string ProtocolAnswer::stream_event(std::string_view data) {
  if (data == "[DONE]") return stream_finish();
  const json chunk = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!chunk.is_object()) return stream_error(502, "The child sent a stream event that is no JSON object.");
  if (const json* error = translate::member(chunk, "error")) {
    const std::string code = error->is_object() ? translate::string_member(*error, "code") : std::string();
    return stream_error(status_of_code(code).value_or(502), error_message(chunk, "The child's stream failed."));
  }
  return stream().on_chunk(chunk);
}

std::string ProtocolAnswer::stream_finish() {
  if (stream_done_) return {};
  stream_done_ = true;
  return stream().finish();
}

std::string ProtocolAnswer::stream_error(unsigned status, std::string_view message) {
  if (stream_done_) return {};
  stream_done_ = true;
  return stream().on_error(static_cast<int>(status), message);
}

std::string ProtocolAnswer::keepalive() {
  std::string event = stream().keepalive();
  return event.empty() ? std::string(kComment) : event;
}

}  // namespace coordinator
