#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/translate/gemini_api.hpp"
#include "translate_sse.hpp"

namespace coordinator::translate::gemini {
namespace {

using nlohmann::json;
using testing::parse_sse;

Options options() {
  Options out;
  out.id_base = "req1";
  out.created = 1741476542;
  return out;
}

json chat_request(const char* body, bool stream = false) {
  Result<json> result = to_chat_request(json::parse(body), "gemini-2.5-flash", stream, options());
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? result.value() : json();
}

json child_answer(json message, const char* finish_reason) {
  return {{"id", "chatcmpl-abc1234-1741476542"},
          {"object", "chat.completion"},
          {"created", 1741476542},
          {"model", "gemini-2.5-flash"},
          {"choices", {{{"index", 0}, {"message", message}, {"finish_reason", finish_reason}}}},
          {"usage", {{"prompt_tokens", 8}, {"completion_tokens", 12}, {"total_tokens", 20}}}};
}

json child_chunk(json delta, json finish_reason = nullptr) {
  return {{"id", "chatcmpl-abc1234-1741476542-512"},
          {"object", "chat.completion.chunk"},
          {"model", "gemini-2.5-flash"},
          {"created", 1741476542},
          {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish_reason}}}}};
}

json last_child_chunk(const char* finish_reason) {
  json chunk = child_chunk(json::object(), finish_reason);
  chunk["usage"] = {{"prompt_tokens", 8}, {"completion_tokens", 12}, {"total_tokens", 20}};
  return chunk;
}

TEST(TranslateGemini, TextContentsBecomeAChatRequestForThePathsModel) {
  EXPECT_EQ(chat_request(R"({"contents": [{"parts": [{"text": "Explain how AI works in a few words"}]}]})"),
            json::parse(R"({"model": "gemini-2.5-flash", "stream": false,
                            "messages": [{"role": "user", "content": "Explain how AI works in a few words"}]})"));
  EXPECT_EQ(chat_request(R"({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})", true).at("stream"), true);
  const ModelAliases aliases = {{"gemini-2.5-flash", "gemini-2.5-pro"}};
  Options with = options();
  with.model_aliases = &aliases;
  const auto aliased =
      to_chat_request(json::parse(R"({"contents": [{"parts": [{"text": "hi"}]}]})"), "gemini-2.5-flash", false, with);
  ASSERT_TRUE(aliased.ok());
  EXPECT_EQ(aliased.value().at("model"), "gemini-2.5-pro");
}

TEST(TranslateGemini, SystemInstructionHistoryAndGenerationConfig) {
  // The REST docs' curl examples use the proto's snake_case names.
  const json chat = chat_request(R"({
    "system_instruction": {"parts": [{"text": "You are a cat."}, {"text": "Your name is Neko."}]},
    "contents": [{"role": "user", "parts": [{"text": "Hello"}]},
                 {"role": "model", "parts": [{"text": "Great to meet you.", "thoughtSignature": "c2ln"},
                                             {"text": "Hidden thinking.", "thought": true}]},
                 {"role": "user", "parts": [{"text": "I have two dogs."}, {"text": "How many paws?"}]}],
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "generationConfig": {"temperature": 1.0, "topP": 0.8, "maxOutputTokens": 800, "stopSequences": ["Title"],
                         "candidateCount": 1, "responseMimeType": "text/plain", "seed": 7,
                         "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": false}}})");
  EXPECT_EQ(chat, json::parse(R"({
    "model": "gemini-2.5-flash", "stream": false,
    "temperature": 1.0, "top_p": 0.8, "max_output_tokens": 800, "stop": ["Title"], "reasoning_effort": 0,
    "messages": [{"role": "system", "content": "You are a cat.\nYour name is Neko."},
                 {"role": "user", "content": "Hello"},
                 {"role": "assistant", "content": "Great to meet you."},
                 {"role": "user", "content": "I have two dogs.\nHow many paws?"}]})"));
  const json snake = chat_request(R"({"contents": [{"parts": [{"text": "x"}]}],
      "generation_config": {"max_output_tokens": 50, "top_p": 0.5, "thinking_config": {"thinking_level": "HIGH"}}})");
  EXPECT_EQ(snake.at("max_output_tokens"), 50);
  EXPECT_EQ(snake.at("top_p"), 0.5);
  EXPECT_EQ(snake.at("reasoning_effort"), "high");
}

TEST(TranslateGemini, FunctionCallingMakesTheChatRoundTrip) {
  // The function-calling guide's light-control example.
  const json chat = chat_request(R"({
    "tools": [{"functionDeclarations": [{"name": "set_light_values",
      "description": "Sets the brightness and color temperature of a light.",
      "parameters": {"type": "OBJECT", "properties": {
        "brightness": {"type": "INTEGER", "description": "Light level from 0 to 100."},
        "color_temp": {"type": "STRING", "enum": ["daylight", "cool", "warm"]}},
        "required": ["brightness", "color_temp"]}}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["set_light_values"]}},
    "contents": [
      {"role": "user", "parts": [{"text": "Turn the lights down to a romantic level"}]},
      {"role": "model", "parts": [{"functionCall": {"name": "set_light_values",
                                                    "args": {"brightness": 25, "color_temp": "warm"}}}]},
      {"role": "user", "parts": [{"functionResponse": {"name": "set_light_values",
                                                       "response": {"brightness": 25, "colorTemperature": "warm"}}}]}]})");
  EXPECT_EQ(chat, json::parse(R"({
    "model": "gemini-2.5-flash", "stream": false,
    "tools": [{"type": "function", "function": {"name": "set_light_values",
      "description": "Sets the brightness and color temperature of a light.",
      "parameters": {"type": "object", "properties": {
        "brightness": {"type": "integer", "description": "Light level from 0 to 100."},
        "color_temp": {"type": "string", "enum": ["daylight", "cool", "warm"]}},
        "required": ["brightness", "color_temp"]}}}],
    "tool_choice": {"type": "function", "function": {"name": "set_light_values"}},
    "messages": [
      {"role": "user", "content": "Turn the lights down to a romantic level"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
        "function": {"name": "set_light_values", "arguments": "{\"brightness\":25,\"color_temp\":\"warm\"}"}}]},
      {"role": "tool", "tool_call_id": "call_0", "content": "{\"brightness\":25,\"colorTemperature\":\"warm\"}"}]})"));
}

TEST(TranslateGemini, ParallelCallsAreAnsweredInOrderOrById) {
  const json chat = chat_request(R"({"contents": [
      {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
      {"role": "model", "parts": [{"text": "Checking."},
                                  {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                  {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                                  {"function_call": {"id": "x9", "name": "get_time", "args": {}}}]},
      {"role": "function", "parts": [{"function_response": {"id": "x9", "name": "get_time", "response": {"t": "noon"}}},
                                     {"functionResponse": {"name": "get_weather", "response": {"c": 14}}},
                                     {"functionResponse": {"name": "get_weather", "response": {"c": 19}}}]}]})");
  const json& messages = chat.at("messages");
  ASSERT_EQ(messages.size(), 5u);
  EXPECT_EQ(messages[1].at("content"), "Checking.");
  ASSERT_EQ(messages[1].at("tool_calls").size(), 3u);
  EXPECT_EQ(messages[1].at("tool_calls")[2].at("id"), "x9");
  EXPECT_EQ(messages[2].at("tool_call_id"), "x9");
  EXPECT_EQ(messages[3].at("tool_call_id"), "call_0");
  EXPECT_EQ(messages[3].at("content"), "{\"c\":14}");
  EXPECT_EQ(messages[4].at("tool_call_id"), "call_1");
}

TEST(TranslateGemini, FunctionCallingModes) {
  const auto choice = [](const char* config) {
    const std::string body = std::string(R"({"contents": [{"parts": [{"text": "x"}]}], "toolConfig": )") + config + "}";
    return chat_request(body.c_str()).at("tool_choice");
  };
  EXPECT_EQ(choice(R"({"functionCallingConfig": {"mode": "AUTO"}})"), "auto");
  EXPECT_EQ(choice(R"({"functionCallingConfig": {"mode": "NONE"}})"), "none");
  EXPECT_EQ(choice(R"({"functionCallingConfig": {"mode": "ANY"}})"), "required");
  EXPECT_EQ(choice(R"({"function_calling_config": {"mode": "VALIDATED"}})"), "auto");
}

struct Refusal {
  const char* body;
  const char* param;
};

TEST(TranslateGemini, WhatTheChildCannotDoIsRefusedAsInvalidArgument) {
  const Refusal refusals[] = {
      {R"({"contents": [{"parts": [{"text": "Caption this."},
          {"inline_data": {"mime_type": "image/jpeg", "data": "/9j/4AAQ"}}]}]})",
       "contents[0].parts[1]"},
      {R"({"contents": [{"parts": [{"fileData": {"mimeType": "application/pdf", "fileUri": "gs://x"}}]}]})",
       "contents[0].parts[0]"},
      {R"({"contents": [{"role": "model", "parts": [{"executableCode": {"language": "PYTHON", "code": "x = 1"}}]}]})",
       "contents[0].parts[0]"},
      {R"({"contents": [{"parts": [{"videoMetadata": {}}]}]})", "contents[0].parts[0]"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}})",
       "generationConfig.candidateCount"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 40}})", "generationConfig.topK"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"presencePenalty": 0.5}})",
       "generationConfig.presencePenalty"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseMimeType": "application/json"}})",
       "generationConfig.responseMimeType"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"response_schema": {"type": "OBJECT"}}})",
       "generationConfig.responseSchema"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}})",
       "generationConfig.responseModalities"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseLogprobs": true}})",
       "generationConfig.responseLogprobs"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": -5}}})",
       "generationConfig.thinkingConfig.thinkingBudget"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"stopSequences": "END"}})",
       "generationConfig.stopSequences"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]})", "tools[0].googleSearch"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"code_execution": {}}]})", "tools[0].code_execution"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"description": "no name"}]}]})",
       "tools[0].functionDeclarations[0].name"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": {"mode": "ANY",
          "allowedFunctionNames": ["a", "b"]}}})",
       "toolConfig.functionCallingConfig.allowedFunctionNames"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}})",
       "toolConfig.functionCallingConfig.mode"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/abc"})", "cachedContent"},
      {R"({"contents": []})", "contents"},
      {R"({"generationConfig": {}})", "contents"},
      {R"({"contents": [{"role": "system", "parts": [{"text": "x"}]}]})", "contents[0].role"},
      {R"({"contents": [{"role": "user"}]})", "contents[0].parts"},
      {R"({"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": {"parts": [{"inlineData": {}}]}})",
       "systemInstruction.parts[0]"},
      {R"({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": [1]}}]}]})",
       "contents[0].parts[0].functionCall"},
      {R"({"contents": [{"parts": [{"functionResponse": {"response": {}}}]}]})",
       "contents[0].parts[0].functionResponse.name"},
  };
  for (const Refusal& refusal : refusals) {
    const Result<json> result = to_chat_request(json::parse(refusal.body), "gemini-2.5-flash", false, options());
    ASSERT_FALSE(result.ok()) << refusal.body;
    EXPECT_EQ(result.error().status, 400) << refusal.body;
    EXPECT_EQ(result.error().param, refusal.param) << refusal.body;
    const json body = error_body(result.error());
    EXPECT_EQ(body.at("error").at("code"), 400);
    EXPECT_EQ(body.at("error").at("status"), "INVALID_ARGUMENT");
    EXPECT_EQ(body.at("error").at("message"), result.error().message);
  }
  EXPECT_FALSE(to_chat_request(json::array(), "m", false, options()).ok());
}

TEST(TranslateGemini, ErrorsHaveGooglesShapeAndStatusNames) {
  EXPECT_EQ(error_body(429, "Resource has been exhausted (e.g. check quota)."),
            json::parse(R"({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                                      "status": "RESOURCE_EXHAUSTED"}})"));
  const std::pair<int, const char*> mapping[] = {
      {400, "INVALID_ARGUMENT"},  {401, "UNAUTHENTICATED"}, {403, "PERMISSION_DENIED"}, {404, "NOT_FOUND"},
      {499, "CANCELLED"},         {500, "INTERNAL"},        {502, "UNAVAILABLE"},       {503, "UNAVAILABLE"},
      {504, "DEADLINE_EXCEEDED"}, {530, "INTERNAL"}};
  for (const auto& [status, name] : mapping)
    EXPECT_EQ(error_body(status, "x").at("error").at("status"), name) << status;
}

TEST(TranslateGemini, TextAnswerBecomesAGenerateContentResponse) {
  const auto answer = from_chat_answer(
      "gemini-2.5-flash", child_answer({{"role", "assistant"}, {"content", "AI learns patterns from data."}}, "stop"),
      options());
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value(), json::parse(R"({
    "candidates": [{"content": {"parts": [{"text": "AI learns patterns from data."}], "role": "model"},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20},
    "modelVersion": "gemini-2.5-flash", "responseId": "req1"})"));
}

TEST(TranslateGemini, ChildToolCallsBecomeFunctionCallParts) {
  const json message = json::parse(R"({"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_k3n8x2", "index": 0, "type": "function",
       "function": {"name": "set_light_values", "arguments": "{\"brightness\": 25, \"color_temp\": \"warm\"}"}}]})");
  const auto answer = from_chat_answer("gemini-2.5-flash", child_answer(message, "tool_calls"), options());
  ASSERT_TRUE(answer.ok());
  const json& candidate = answer.value().at("candidates")[0];
  EXPECT_EQ(candidate.at("content").at("parts"), json::parse(R"([{"functionCall": {"id": "call_k3n8x2",
      "name": "set_light_values", "args": {"brightness": 25, "color_temp": "warm"}}}])"));
  EXPECT_EQ(candidate.at("finishReason"), "STOP");
  const auto cut =
      from_chat_answer("m", child_answer({{"role", "assistant"}, {"content", "Once"}}, "length"), options());
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut.value().at("candidates")[0].at("finishReason"), "MAX_TOKENS");
  const auto bad = from_chat_answer("m", json::parse(R"({"detail": "[abc1234] boom"})"), options());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(error_body(bad.error()).at("error").at("status"), "UNAVAILABLE");
}

TEST(TranslateGemini, StreamedTextIsOneResponseChunkPerDataLine) {
  Stream stream("gemini-2.5-flash", options());
  EXPECT_EQ(stream.start(), "");
  EXPECT_EQ(stream.keepalive(), "");
  EXPECT_EQ(stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "Hm"}})),
            "");
  const std::string first = stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", "AI learns"}}));
  EXPECT_EQ(first, "data: " +
                       json::parse(R"({"candidates": [{"content": {"parts": [{"text": "AI learns"}], "role": "model"},
                                       "index": 0}], "modelVersion": "gemini-2.5-flash", "responseId": "req1"})")
                           .dump() +
                       "\n\n");
  std::string bytes = first + stream.on_chunk(child_chunk({{"content", " patterns."}}));
  bytes += stream.on_chunk(child_chunk(json::object()));
  bytes += stream.on_chunk(last_child_chunk("stop"));
  bytes += stream.finish();
  const auto events = parse_sse(bytes);
  ASSERT_EQ(events.size(), 3u);
  for (const auto& event : events) EXPECT_EQ(event.name, "");
  EXPECT_EQ(events[1].data.at("candidates")[0].at("content").at("parts")[0].at("text"), " patterns.");
  EXPECT_EQ(events[2].data, json::parse(R"({
    "candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20},
    "modelVersion": "gemini-2.5-flash", "responseId": "req1"})"));
  EXPECT_EQ(stream.finish(), "");
}

TEST(TranslateGemini, StreamedToolCallsGoOutWholeInTheLastChunk) {
  Stream stream("gemini-2.5-flash", options());
  std::string bytes = stream.on_chunk(child_chunk({{"content", "Dimming."}}));
  bytes += stream.on_chunk(child_chunk(json::parse(
      R"({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "set_light_values"}}]})")));
  bytes += stream.on_chunk(child_chunk(json::parse(
      R"({"tool_calls": [{"index": 0, "id": "call_x", "function": {"arguments": "{\"brightness\": 25,"}}]})")));
  bytes += stream.on_chunk(child_chunk(
      json::parse(R"({"tool_calls": [{"index": 0, "function": {"arguments": " \"color_temp\": \"warm\"}"}}]})")));
  bytes += stream.on_chunk(last_child_chunk("tool_calls"));
  bytes += stream.finish();
  const auto events = parse_sse(bytes);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].data.at("candidates")[0].at("content").at("parts"),
            json::parse(R"([{"functionCall": {"id": "call_x", "name": "set_light_values",
                                              "args": {"brightness": 25, "color_temp": "warm"}}}])"));
  EXPECT_EQ(events[1].data.at("candidates")[0].at("finishReason"), "STOP");
}

TEST(TranslateGemini, StreamCutAtTheLimitEndsWithMaxTokens) {
  Stream stream("gemini-2.5-flash", options());
  std::string bytes = stream.on_chunk(child_chunk({{"content", "Once upon"}}));
  bytes += stream.on_chunk(last_child_chunk("length"));
  const auto events = parse_sse(bytes + stream.finish());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].data.at("candidates")[0].at("finishReason"), "MAX_TOKENS");
  EXPECT_EQ(events[1].data.at("usageMetadata").at("totalTokenCount"), 20);
}

TEST(TranslateGemini, ErrorsEndTheStreamInGooglesShape) {
  Stream stream("gemini-2.5-flash", options());
  std::string bytes = stream.on_chunk(child_chunk({{"content", "AI"}}));
  bytes += stream.on_error(429, "Resource has been exhausted.");
  const auto events = parse_sse(bytes);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].data, json::parse(R"({"error": {"code": 429, "message": "Resource has been exhausted.",
                                                      "status": "RESOURCE_EXHAUSTED"}})"));
  EXPECT_EQ(stream.finish(), "");
  EXPECT_EQ(stream.on_chunk(child_chunk({{"content", "late"}})), "");

  Stream quota("gemini-2.5-flash", options());  // the real child's `data: {"error": "..."}`
  const auto quota_events = parse_sse(quota.on_chunk(json::parse(R"({"error": "Auth rotation failed."})")));
  ASSERT_EQ(quota_events.size(), 1u);
  EXPECT_EQ(quota_events[0].data.at("error").at("status"), "UNAVAILABLE");
  EXPECT_EQ(quota_events[0].data.at("error").at("message"), "Auth rotation failed.");
}

TEST(TranslateGemini, ModelsListFromModelIds) {
  EXPECT_EQ(models_list({"gemini-2.5-pro", "models/gemini-2.5-flash"}), json::parse(R"({"models": [
    {"name": "models/gemini-2.5-pro", "displayName": "gemini-2.5-pro",
     "description": "Served through the coordinator's AI Studio children.",
     "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]},
    {"name": "models/gemini-2.5-flash", "displayName": "gemini-2.5-flash",
     "description": "Served through the coordinator's AI Studio children.",
     "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]}]})"));
  EXPECT_EQ(models_list({}), json::parse(R"({"models": []})"));
  EXPECT_EQ(model_info("gemini-2.5-pro").at("name"), "models/gemini-2.5-pro");
}

}  // namespace
}  // namespace coordinator::translate::gemini
