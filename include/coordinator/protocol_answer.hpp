#pragma once

// The answer to a request that came in another protocol than chat
// completions (Responses, Anthropic Messages, Gemini): the child's chat answer
// or stream, and the coordinator's own errors, turned into that protocol as
// they pass through ClientResponse. Pure: bytes in, bytes out, no I/O.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "coordinator/translate/common.hpp"

namespace coordinator {

enum class ClientProtocol { responses, anthropic, gemini };

// The protocol's error body: for an error of the coordinator's own, and for
// a request the translator refused.
// `code`: the coordinator's error code (quota_exhausted, ...), where the protocol carries one.
std::string protocol_error_json(ClientProtocol protocol, unsigned status, std::string_view message,
                                std::string_view code = {});
std::string protocol_error_json(ClientProtocol protocol, const translate::ProtocolError& error);

class ProtocolAnswer {
 public:
  // `client_request` is the body the client sent (the translators echo parts
  // of it); `model` the model as the client named it (Gemini's comes from the path).
  ProtocolAnswer(ClientProtocol protocol, nlohmann::json client_request, std::string model, translate::Options options);

  ClientProtocol protocol() const { return protocol_; }

  // A whole (non-stream) answer: the child's 2xx chat.completion translated,
  // or its error (already in the OpenAI shape) in the protocol's error shape
  // with the same status. An answer that cannot be read becomes a 502.
  struct Whole {
    unsigned status = 200;
    std::string body;
  };
  Whole whole(unsigned child_status, std::string_view child_body) const;
  // The protocol's error body for an error of the coordinator's own.
  std::string error_json(unsigned status, std::string_view message, std::string_view code = {}) const;

  // The whole stream for a child's JSON chat.completion to a stream request
  // (the real child answers a forced tool call so): the events from start to end.
  std::string stream_from_whole(std::string_view child_body);

  // A streamed answer. The child's SSE bytes come in arbitrary pieces; each
  // call returns the protocol's events for the complete child events so far.
  std::string stream_start();
  std::string stream_bytes(std::string_view child_sse);
  // The child's stream ended (after [DONE], or without one).
  std::string stream_finish();
  // The error event that ends the stream.
  std::string stream_error(unsigned status, std::string_view message);
  // What keeps a silent stream alive: the protocol's event, else an SSE comment.
  std::string keepalive();

 private:
  translate::StreamTranslator& stream();
  std::string stream_line(std::string_view line);
  std::string stream_event(std::string_view data);

  ClientProtocol protocol_;
  nlohmann::json client_request_;
  std::string model_;
  translate::Options options_;
  std::unique_ptr<translate::StreamTranslator> stream_;  // made on the first stream call
  std::string partial_;                                  // a child line not yet complete
  std::string event_data_;                               // the data lines of the event being read
  bool stream_done_ = false;                             // [DONE], an error or the end has been turned
};

}  // namespace coordinator
