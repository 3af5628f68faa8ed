#pragma once

// POST /v1/messages and /v1/messages/count_tokens (Anthropic Messages API)
// over the child's chat completions. Pure, as responses_api.hpp.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "coordinator/translate/common.hpp"

namespace coordinator::translate::anthropic {

// The chat request for `request`, or a 400 invalid_request_error (missing
// model, max_tokens or messages; image and document blocks, server tools,
// top_k, ...).
Result<nlohmann::json> to_chat_request(const nlohmann::json& request, const Options& options);

// The `message` object for the child's non-streamed chat.completion.
Result<nlohmann::json> from_chat_answer(const nlohmann::json& request, const nlohmann::json& chat_answer,
                                        const Options& options);

// The answer to /v1/messages/count_tokens: {"input_tokens": N, "estimated": true},
// N estimated as the child counts its usage (nothing here can tokenize).
// The request is checked as for /v1/messages, except that max_tokens is optional.
Result<nlohmann::json> count_tokens(const nlohmann::json& request, const Options& options);

// {"type":"error","error":{"type","message"}}, the type from the status
// (400 invalid_request_error, 401 authentication_error, 403 permission_error,
// 404 not_found_error, 413 request_too_large, 429 rate_limit_error,
// 503/529 overloaded_error, 504 timeout_error, others api_error).
nlohmann::json error_body(const ProtocolError& error);
nlohmann::json error_body(int status, std::string_view message);

// The streamed answer: message_start, per content block (text or tool_use)
// content_block_start, content_block_delta (text_delta / input_json_delta),
// content_block_stop, then message_delta (stop_reason, usage) and
// message_stop; `ping` as the keep-alive; an `error` event ends it on failure.
class Stream final : public StreamTranslator {
 public:
  Stream(const nlohmann::json& request, Options options);
  std::string start() override;
  std::string on_chunk(const nlohmann::json& chunk) override;
  std::string finish() override;
  std::string on_error(int status, std::string_view message) override;
  std::string keepalive() override;

 private:
  enum class OpenBlock { none, text, tool_use };
  std::string open_block(OpenBlock kind, std::size_t call);
  std::string close_block();

  Options options_;
  std::string model_;  // as the client named it
  ChatStreamReader reader_;
  bool started_ = false;
  bool ended_ = false;
  OpenBlock open_ = OpenBlock::none;
  std::size_t open_call_ = 0;  // the reader's tool call position, for a tool_use block
  int next_block_index_ = 0;
};

}  // namespace coordinator::translate::anthropic
