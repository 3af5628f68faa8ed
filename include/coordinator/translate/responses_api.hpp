#pragma once

// POST /v1/responses (OpenAI Responses API) over the child's chat completions.
// Pure: the route parses the body, calls to_chat_request, sends the chat
// request, and turns the child's answer or stream back with the functions
// below, all given the same client request and Options.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "coordinator/translate/common.hpp"

namespace coordinator::translate::responses {

// The chat request for `request`, or a 400 for what the child cannot do
// (store, previous_response_id, background, non-function tools, image, file
// and audio inputs, structured output, ...).
Result<nlohmann::json> to_chat_request(const nlohmann::json& request, const Options& options);

// The `response` object for the child's non-streamed chat.completion.
Result<nlohmann::json> from_chat_answer(const nlohmann::json& request, const nlohmann::json& chat_answer,
                                        const Options& options);

// OpenAI's {"error":{"message","type","param","code"}}, the type from the status.
nlohmann::json error_body(const ProtocolError& error);
nlohmann::json error_body(int status, std::string_view message);

// The streamed answer: response.created, response.in_progress, then per
// output item (a message with one output_text part, or a function_call)
// output_item.added ... deltas ... output_item.done, and response.completed
// (response.incomplete when cut at max_output_tokens); every event carries its
// sequence_number. An error ends it with `error` and response.failed.
class Stream final : public StreamTranslator {
 public:
  Stream(const nlohmann::json& request, Options options);
  std::string start() override;
  std::string on_chunk(const nlohmann::json& chunk) override;
  std::string finish() override;
  std::string on_error(int status, std::string_view message) override;
  std::string keepalive() override { return {}; }  // the Responses API has no keep-alive event

 private:
  enum class OpenItem { none, message, function_call };
  std::string event(const char* type, nlohmann::json data);
  nlohmann::json response(const char* status) const;
  std::string open_message();
  std::string open_function_call(std::size_t call);
  std::string close_open_item();

  Options options_;
  nlohmann::json echo_;  // the request's settings every response object repeats
  ChatStreamReader reader_;
  nlohmann::json output_ = nlohmann::json::array();  // the items closed so far
  std::int64_t sequence_number_ = 0;
  bool started_ = false;
  bool ended_ = false;
  OpenItem open_ = OpenItem::none;
  std::string open_item_id_;
  std::size_t open_call_ = 0;  // the reader's tool call position, for a function_call item
  std::string text_;           // the open message's text so far
};

}  // namespace coordinator::translate::responses
