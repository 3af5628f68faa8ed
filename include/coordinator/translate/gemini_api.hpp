#pragma once

// POST /v1beta/models/{model}:generateContent and :streamGenerateContent
// (?alt=sse), and GET /v1beta/models (Gemini API) over the child's chat
// completions. Pure, as responses_api.hpp. The model comes from the path, not
// the body; the route passes it without the "models/" prefix.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/translate/common.hpp"

namespace coordinator::translate::gemini {

// The chat request for a GenerateContentRequest `body`, or a 400
// INVALID_ARGUMENT (inlineData/fileData parts, candidateCount > 1, topK,
// non-function tools, JSON output, ...). `stream`: the :streamGenerateContent route.
Result<nlohmann::json> to_chat_request(const nlohmann::json& body, std::string_view model, bool stream,
                                       const Options& options);

// The GenerateContentResponse for the child's non-streamed chat.completion.
Result<nlohmann::json> from_chat_answer(std::string_view model, const nlohmann::json& chat_answer,
                                        const Options& options);

// {"error":{"code","message","status"}}, the status from the HTTP status
// (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
// 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 499 CANCELLED, 500 INTERNAL,
// 502/503 UNAVAILABLE, 504 DEADLINE_EXCEEDED, ...).
nlohmann::json error_body(const ProtocolError& error);
nlohmann::json error_body(int status, std::string_view message);

// GET /v1beta/models from the model ids the children list: {"models": [{"name": "models/ID", ...}]}.
nlohmann::json models_list(const std::vector<std::string>& model_ids);
// GET /v1beta/models/{model}: one entry of that list.
nlohmann::json model_info(std::string_view model_id);

// The streamed answer for ?alt=sse: each `data:` a GenerateContentResponse
// with the new text; function calls (whole, as Gemini sends them) with
// finishReason and usageMetadata in the last one. No opening event and no
// keep-alive event (the relay's SSE comment is fine for SSE clients).
class Stream final : public StreamTranslator {
 public:
  Stream(std::string_view model, Options options);
  std::string start() override { return {}; }
  std::string on_chunk(const nlohmann::json& chunk) override;
  std::string finish() override;
  std::string on_error(int status, std::string_view message) override;
  std::string keepalive() override { return {}; }

 private:
  Options options_;
  std::string model_;
  ChatStreamReader reader_;
  bool ended_ = false;
};

}  // namespace coordinator::translate::gemini
