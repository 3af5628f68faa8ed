#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/translate/responses_api.hpp"
#include "translate_sse.hpp"

namespace coordinator::translate::responses {
namespace {

using nlohmann::json;
using testing::names_of;
using testing::parse_sse;

Options options() {
  Options out;
  out.id_base = "req1";
  out.created = 1741476542;
  return out;
}

json chat_request(const char* request_text, const Options& with = options()) {
  Result<json> result = to_chat_request(json::parse(request_text), with);
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? result.value() : json();
}

// The real child's non-streamed answer (request_processor.py, response_payloads.py).
json child_answer(json message, const char* finish_reason) {
  return {{"id", "chatcmpl-abc1234-1741476542"},
          {"object", "chat.completion"},
          {"created", 1741476542},
          {"model", "gemini-2.5-pro"},
          {"choices",
           {{{"index", 0},
             {"message", message},
             {"finish_reason", finish_reason},
             {"native_finish_reason", finish_reason}}}},
          {"usage", {{"prompt_tokens", 36}, {"completion_tokens", 87}, {"total_tokens", 123}}},
          {"system_fingerprint", "camoufox-proxy"}};
}

// One chunk as the real child's stream path writes it (response_generators.py).
json child_chunk(json delta, json finish_reason = nullptr) {
  return {{"id", "chatcmpl-abc1234-1741476542-512"},
          {"object", "chat.completion.chunk"},
          {"model", "gemini-2.5-pro"},
          {"created", 1741476542},
          {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish_reason}}}}};
}

json last_child_chunk(const char* finish_reason) {
  json chunk = child_chunk(json::object(), finish_reason);
  chunk["usage"] = {{"prompt_tokens", 12}, {"completion_tokens", 5}, {"total_tokens", 17}};
  return chunk;
}

TEST(TranslateResponses, StringInputBecomesOneUserMessage) {
  const json chat =
      chat_request(R"({"model": "gpt-4.1", "input": "Tell me a three sentence bedtime story about a unicorn."})");
  EXPECT_EQ(chat, json::parse(R"({"model": "gpt-4.1", "messages": [
      {"role": "user", "content": "Tell me a three sentence bedtime story about a unicorn."}]})"));
}

TEST(TranslateResponses, InstructionsAndSystemItemsMergeIntoOneLeadingSystemMessage) {
  const json chat = chat_request(R"({
    "model": "gpt-4.1", "instructions": "Talk like a pirate.", "stream": true,
    "max_output_tokens": 256, "temperature": 0.2, "top_p": 0.9, "parallel_tool_calls": false,
    "metadata": {"k": "v"}, "store": false, "truncation": "auto", "user": "u-1",
    "input": [
      {"role": "developer", "content": "Answer in one line."},
      {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Are semicolons optional"},
                                                       {"type": "input_text", "text": "in JavaScript?"}]},
      {"role": "assistant", "content": [{"type": "output_text", "text": "Arr, mostly."}]},
      {"role": "user", "content": "Why?"}]})");
  // The child reads only the first system message (prompts.py), and only
  // `max_output_tokens` (models/chat.py): no max_tokens is sent.
  EXPECT_EQ(chat, json::parse(R"({
    "model": "gpt-4.1", "stream": true, "max_output_tokens": 256, "temperature": 0.2, "top_p": 0.9,
    "parallel_tool_calls": false,
    "messages": [
      {"role": "system", "content": "Talk like a pirate.\n\nAnswer in one line."},
      {"role": "user", "content": "Are semicolons optional\nin JavaScript?"},
      {"role": "assistant", "content": "Arr, mostly."},
      {"role": "user", "content": "Why?"}]})"));
}

TEST(TranslateResponses, ModelAliasAppliesToTheChatRequestOnly) {
  const ModelAliases aliases = {{"gpt-4.1", "gemini-2.5-pro"}};
  Options with = options();
  with.model_aliases = &aliases;
  const json request = json::parse(R"({"model": "gpt-4.1", "input": "hi"})");
  EXPECT_EQ(chat_request(request.dump().c_str(), with).at("model"), "gemini-2.5-pro");
  const auto answer =
      from_chat_answer(request, child_answer({{"role", "assistant"}, {"content", "hello"}}, "stop"), with);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value().at("model"), "gpt-4.1");
  EXPECT_EQ(chat_request(R"({"model": "o3", "input": "hi"})", with).at("model"), "o3");
}

TEST(TranslateResponses, FunctionToolsAndToolHistoryMakeTheChatRoundTrip) {
  const json chat = chat_request(R"({
    "model": "gpt-4.1",
    "tools": [{"type": "function", "name": "get_weather", "description": "Get current temperature for a location.",
               "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                              "required": ["location"], "additionalProperties": false}, "strict": true}],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "input": [
      {"role": "user", "content": "What is the weather like in Paris today?"},
      {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
      {"type": "function_call", "id": "fc_12345", "call_id": "call_12345", "name": "get_weather",
       "arguments": "{\"location\":\"Paris, France\"}"},
      {"type": "function_call_output", "call_id": "call_12345", "output": "{\"temperature\": 14}"}]})");
  EXPECT_EQ(chat, json::parse(R"({
    "model": "gpt-4.1",
    "tools": [{"type": "function", "function": {"name": "get_weather",
               "description": "Get current temperature for a location.",
               "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                              "required": ["location"], "additionalProperties": false}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "messages": [
      {"role": "user", "content": "What is the weather like in Paris today?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_12345", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}"}}]},
      {"role": "tool", "tool_call_id": "call_12345", "content": "{\"temperature\": 14}"}]})"));
}

TEST(TranslateResponses, AssistantTextAndItsFunctionCallsAreOneChatTurn) {
  const json chat = chat_request(R"({"input": [
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": "Checking both."},
      {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
      {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
      {"type": "function_call_output", "call_id": "call_a", "output": [{"type": "input_text", "text": "14C"}]},
      {"type": "function_call_output", "call_id": "call_b", "output": "19C"}]})");
  const json& messages = chat.at("messages");
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[1].at("content"), "Checking both.");
  ASSERT_EQ(messages[1].at("tool_calls").size(), 2u);
  EXPECT_EQ(messages[1].at("tool_calls")[1].at("id"), "call_b");
  EXPECT_EQ(messages[2], json::parse(R"({"role": "tool", "tool_call_id": "call_a", "content": "14C"})"));
  EXPECT_EQ(messages[3].at("tool_call_id"), "call_b");
  EXPECT_FALSE(chat.contains("model"));  // absent: the child uses its default
}

TEST(TranslateResponses, ReasoningEffortMapsToTheChildsScale) {
  // The child reads "none" as an unlimited budget, 0 as no thinking.
  EXPECT_EQ(chat_request(R"({"input": "x", "reasoning": {"effort": "none"}})").at("reasoning_effort"), 0);
  EXPECT_EQ(chat_request(R"({"input": "x", "reasoning": {"effort": "minimal"}})").at("reasoning_effort"), "low");
  EXPECT_EQ(
      chat_request(R"({"input": "x", "reasoning": {"effort": "high", "summary": "auto"}})").at("reasoning_effort"),
      "high");
}

struct Refusal {
  const char* request;
  const char* param;
};

TEST(TranslateResponses, WhatTheChildCannotDoIsRefusedNamingTheField) {
  const Refusal refusals[] = {
      {R"({"input": "x", "store": true})", "store"},
      {R"({"input": "x", "previous_response_id": "resp_123"})", "previous_response_id"},
      {R"({"input": "x", "background": true})", "background"},
      {R"({"input": "x", "conversation": "conv_1"})", "conversation"},
      {R"({"input": "x", "prompt": {"id": "pmpt_1"}})", "prompt"},
      {R"({"input": "x", "tools": [{"type": "web_search_preview"}]})", "tools[0].type"},
      {R"({"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]})", "tools[1].type"},
      {R"({"input": "x", "tool_choice": {"type": "web_search_preview"}})", "tool_choice"},
      {R"({"input": "x", "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}})", "tool_choice"},
      {R"({"input": [{"role": "user", "content": [{"type": "input_text", "text": "what is this?"},
          {"type": "input_image", "image_url": "https://example.com/a.png"}]}]})",
       "input[0].content[1].type"},
      {R"({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]})",
       "input[0].content[0].type"},
      {R"({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]})", "input[0].content[0].type"},
      {R"({"input": [{"type": "item_reference", "id": "msg_1"}]})", "input[0].type"},
      {R"({"input": [{"type": "web_search_call", "id": "ws_1"}]})", "input[0].type"},
      {R"({"input": "x", "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}})", "text.format"},
      {R"({"input": "x", "text": {"format": {"type": "json_object"}}})", "text.format"},
      {R"({"model": "gpt-4.1"})", "input"},
      {R"({"instructions": "only a system prompt", "input": [{"role": "system", "content": "x"}]})", "input"},
      {R"({"input": 7})", "input"},
      {R"({"input": "x", "max_output_tokens": "10"})", "max_output_tokens"},
      {R"({"input": "x", "max_output_tokens": 0})", "max_output_tokens"},
      {R"({"input": "x", "temperature": "hot"})", "temperature"},
      {R"({"input": "x", "model": 4})", "model"},
      {R"({"input": "x", "reasoning": {"effort": "maximal"}})", "reasoning.effort"},
      {R"({"input": [{"role": "tool", "content": "x"}]})", "input[0].role"},
      {R"({"input": [{"type": "function_call_output", "output": "x"}]})", "input[0].call_id"},
      {R"({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {"a": 1}}]})", "input[0]"},
  };
  for (const Refusal& refusal : refusals) {
    const Result<json> result = to_chat_request(json::parse(refusal.request), options());
    ASSERT_FALSE(result.ok()) << refusal.request;
    EXPECT_EQ(result.error().status, 400) << refusal.request;
    EXPECT_EQ(result.error().param, refusal.param) << refusal.request;
    EXPECT_FALSE(result.error().message.empty());
  }
  EXPECT_FALSE(to_chat_request(json::array(), options()).ok());
  EXPECT_TRUE(
      to_chat_request(json::parse(R"({"input": "x", "store": false, "text": {"format": {"type": "text"}}})"), options())
          .ok());
}

TEST(TranslateResponses, ErrorsHaveOpenAIsShape) {
  const Result<json> refused = to_chat_request(json::parse(R"({"input": "x", "store": true})"), options());
  ASSERT_FALSE(refused.ok());
  const json body = error_body(refused.error());
  EXPECT_EQ(body.at("error").at("type"), "invalid_request_error");
  EXPECT_EQ(body.at("error").at("param"), "store");
  EXPECT_EQ(body.at("error").at("code"), "unsupported_parameter");
  EXPECT_NE(body.at("error").at("message").get<std::string>().find("store"), std::string::npos);
  EXPECT_EQ(error_body(429, "slow down"),
            json::parse(R"({"error": {"message": "slow down", "type": "rate_limit_exceeded", "param": null,
                                      "code": null}})"));
  EXPECT_EQ(error_body(500, "boom").at("error").at("type"), "server_error");
  EXPECT_EQ(error_body(503, "busy").at("error").at("type"), "service_unavailable");
  EXPECT_EQ(error_body(404, "no such model").at("error").at("type"), "invalid_request_error");
}

TEST(TranslateResponses, TextAnswerBecomesAResponseWithOneMessageItem) {
  const json request = json::parse(R"({"model": "gpt-4.1", "input": "hi", "instructions": "Be brief.",
                                       "max_output_tokens": 100})");
  const auto answer =
      from_chat_answer(request, child_answer({{"role", "assistant"}, {"content", "Hello there!"}}, "stop"), options());
  ASSERT_TRUE(answer.ok());
  const json& response = answer.value();
  EXPECT_EQ(response.at("id"), "resp_req1");
  EXPECT_EQ(response.at("object"), "response");
  EXPECT_EQ(response.at("created_at"), 1741476542);
  EXPECT_EQ(response.at("status"), "completed");
  EXPECT_EQ(response.at("model"), "gpt-4.1");
  EXPECT_EQ(response.at("instructions"), "Be brief.");
  EXPECT_EQ(response.at("max_output_tokens"), 100);
  EXPECT_EQ(response.at("store"), false);
  EXPECT_EQ(response.at("error"), nullptr);
  EXPECT_EQ(response.at("output"), json::parse(R"([{"id": "msg_req1_0", "type": "message", "status": "completed",
      "role": "assistant", "content": [{"type": "output_text", "text": "Hello there!", "annotations": []}]}])"));
  EXPECT_EQ(response.at("usage").at("input_tokens"), 36);
  EXPECT_EQ(response.at("usage").at("output_tokens"), 87);
  EXPECT_EQ(response.at("usage").at("total_tokens"), 123);
}

TEST(TranslateResponses, ChildToolCallsBecomeFunctionCallItems) {
  // The child's tool-call answer: content null, arguments a JSON string, an extra `index`.
  const json message = json::parse(R"({"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_k3n8x2", "index": 0, "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris, France\"}"}}]})");
  const auto answer =
      from_chat_answer(json::parse(R"({"input": "x"})"), child_answer(message, "tool_calls"), options());
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value().at("output"), json::parse(R"([{"id": "fc_req1_0", "type": "function_call",
      "status": "completed", "call_id": "call_k3n8x2", "name": "get_weather",
      "arguments": "{\"location\": \"Paris, France\"}"}])"));
  EXPECT_EQ(answer.value().at("status"), "completed");
}

TEST(TranslateResponses, AnswerCutAtTheLimitIsIncomplete) {
  const auto answer = from_chat_answer(json::parse(R"({"input": "x"})"),
                                       child_answer({{"role", "assistant"}, {"content", "Once"}}, "length"), options());
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value().at("status"), "incomplete");
  EXPECT_EQ(answer.value().at("incomplete_details"), json::parse(R"({"reason": "max_output_tokens"})"));
}

TEST(TranslateResponses, AnswerThatIsNoChatCompletionIs502) {
  for (const char* bad : {R"({"detail": "[abc1234] boom"})", R"({"choices": []})", R"([1, 2])",
                          R"({"choices": [{"message": {"tool_calls": [{"id": "x"}]}}]})"}) {
    const auto answer = from_chat_answer(json::parse(R"({"input": "x"})"), json::parse(bad), options());
    ASSERT_FALSE(answer.ok()) << bad;
    EXPECT_EQ(answer.error().status, 502);
    EXPECT_EQ(error_body(answer.error()).at("error").at("type"), "upstream_error");
  }
}

void expect_numbered(const std::vector<testing::SseEvent>& events) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].data.at("type"), events[i].name) << i;
    EXPECT_EQ(events[i].data.at("sequence_number"), i) << events[i].name;
  }
}

TEST(TranslateResponses, StreamedTextFollowsTheDocumentedEventSequence) {
  Stream stream(json::parse(R"({"model": "gpt-4.1", "input": "hi", "stream": true})"), options());
  std::string bytes = stream.start();
  EXPECT_EQ(bytes.rfind("event: response.created\ndata: {", 0), 0u);
  // The child's thinking chunk (content null, reasoning_content) adds nothing.
  bytes += stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "Hm."}}));
  bytes += stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", "Hello"}}));
  bytes += stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", " world"}}));
  bytes += stream.on_chunk(child_chunk(json::object()));
  bytes += stream.on_chunk(last_child_chunk("stop"));
  bytes += stream.finish();
  const auto events = parse_sse(bytes);
  EXPECT_EQ(names_of(events),
            (std::vector<std::string>{
                "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
                "response.content_part.done", "response.output_item.done", "response.completed"}));
  expect_numbered(events);
  ASSERT_EQ(events.size(), 10u);
  EXPECT_EQ(events[0].data.at("response").at("status"), "in_progress");
  EXPECT_EQ(events[0].data.at("response").at("output"), json::array());
  EXPECT_EQ(events[0].data.at("response").at("id"), "resp_req1");
  EXPECT_EQ(events[2].data.at("item"), json::parse(R"({"id": "msg_req1_0", "type": "message",
      "status": "in_progress", "role": "assistant", "content": []})"));
  EXPECT_EQ(events[3].data.at("part"), json::parse(R"({"type": "output_text", "text": "", "annotations": []})"));
  EXPECT_EQ(events[4].data.at("delta"), "Hello");
  EXPECT_EQ(events[4].data.at("item_id"), "msg_req1_0");
  EXPECT_EQ(events[4].data.at("output_index"), 0);
  EXPECT_EQ(events[4].data.at("content_index"), 0);
  EXPECT_EQ(events[6].data.at("text"), "Hello world");
  EXPECT_EQ(events[8].data.at("item").at("status"), "completed");
  const json& completed = events[9].data.at("response");
  EXPECT_EQ(completed.at("status"), "completed");
  EXPECT_EQ(completed.at("model"), "gpt-4.1");
  EXPECT_EQ(completed.at("output")[0].at("content")[0].at("text"), "Hello world");
  EXPECT_EQ(completed.at("usage").at("input_tokens"), 12);
  EXPECT_EQ(completed.at("usage").at("output_tokens"), 5);
  EXPECT_EQ(completed.at("usage").at("total_tokens"), 17);
  EXPECT_EQ(stream.finish(), "");
  EXPECT_EQ(stream.on_chunk(child_chunk({{"content", "late"}})), "");
  EXPECT_EQ(stream.keepalive(), "");
}

TEST(TranslateResponses, ChildsWholeToolCallsStreamAsFunctionCallItems) {
  // The child's stream path: every call whole in one chunk, then finish_reason tool_calls with usage.
  Stream stream(json::parse(R"({"model": "gpt-4.1", "input": "x", "stream": true})"), options());
  std::string bytes = stream.on_chunk(child_chunk(json::parse(R"({"tool_calls": [
      {"id": "call_aaaa", "index": 0, "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
      {"id": "call_bbbb", "index": 1, "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"location\": \"Rome\"}"}}]})")));
  bytes += stream.on_chunk(last_child_chunk("tool_calls"));
  bytes += stream.finish();
  const auto events = parse_sse(bytes);
  EXPECT_EQ(names_of(events),
            (std::vector<std::string>{"response.created", "response.in_progress", "response.output_item.added",
                                      "response.function_call_arguments.delta", "response.function_call_arguments.done",
                                      "response.output_item.done", "response.output_item.added",
                                      "response.function_call_arguments.delta", "response.function_call_arguments.done",
                                      "response.output_item.done", "response.completed"}));
  expect_numbered(events);
  ASSERT_EQ(events.size(), 11u);
  EXPECT_EQ(events[2].data.at("item"), json::parse(R"({"id": "fc_req1_0", "type": "function_call",
      "status": "in_progress", "call_id": "call_aaaa", "name": "get_weather", "arguments": ""})"));
  EXPECT_EQ(events[3].data.at("delta"), "{\"location\": \"Paris\"}");
  EXPECT_EQ(events[4].data.at("arguments"), "{\"location\": \"Paris\"}");
  EXPECT_EQ(events[6].data.at("output_index"), 1);
  EXPECT_EQ(events[6].data.at("item").at("call_id"), "call_bbbb");
  EXPECT_EQ(events[9].data.at("item").at("arguments"), "{\"location\": \"Rome\"}");
  const json& output = events[10].data.at("response").at("output");
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[1].at("id"), "fc_req1_1");
  EXPECT_EQ(output[1].at("status"), "completed");
}

TEST(TranslateResponses, TextThenFragmentedToolCallClosesTheMessageFirst) {
  // The child's Playwright path: the name first, then argument fragments, the id on every one.
  Stream stream(json::parse(R"({"input": "x"})"), options());
  std::string bytes = stream.on_chunk(child_chunk({{"content", "Let me check."}}));
  bytes += stream.on_chunk(child_chunk(json::parse(
      R"({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "get_weather"}}]})")));
  bytes += stream.on_chunk(child_chunk(json::parse(
      R"({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"arguments": "{\"loc"}}]})")));
  bytes += stream.on_chunk(
      child_chunk(json::parse(R"({"tool_calls": [{"index": 0, "function": {"arguments": "ation\": \"Paris\"}"}}]})")));
  bytes += stream.on_chunk(last_child_chunk("tool_calls"));
  bytes += stream.finish();
  const auto events = parse_sse(bytes);
  EXPECT_EQ(names_of(events),
            (std::vector<std::string>{
                "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                "response.output_item.done", "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.delta", "response.function_call_arguments.done",
                "response.output_item.done", "response.completed"}));
  expect_numbered(events);
  ASSERT_EQ(events.size(), 14u);
  EXPECT_EQ(events[8].data.at("output_index"), 1);
  EXPECT_EQ(events[8].data.at("item").at("id"), "fc_req1_1");
  EXPECT_EQ(events[9].data.at("item_id"), "fc_req1_1");
  EXPECT_EQ(events[11].data.at("arguments"), "{\"location\": \"Paris\"}");
  EXPECT_EQ(events[11].data.at("name"), "get_weather");
  EXPECT_EQ(events[13].data.at("response").at("output").size(), 2u);
}

TEST(TranslateResponses, ErrorMidStreamEndsWithErrorAndResponseFailed) {
  Stream stream(json::parse(R"({"input": "x"})"), options());
  std::string bytes = stream.on_chunk(child_chunk({{"content", "Par"}}));
  bytes += stream.on_error(502, "The child's stream broke off.");
  const auto events = parse_sse(bytes);
  EXPECT_EQ(names_of(events), (std::vector<std::string>{"response.created", "response.in_progress",
                                                        "response.output_item.added", "response.content_part.added",
                                                        "response.output_text.delta", "error", "response.failed"}));
  expect_numbered(events);
  ASSERT_EQ(events.size(), 7u);
  EXPECT_EQ(events[5].data.at("code"), "upstream_error");
  EXPECT_EQ(events[5].data.at("message"), "The child's stream broke off.");
  EXPECT_EQ(events[6].data.at("response").at("status"), "failed");
  EXPECT_EQ(events[6].data.at("response").at("error"),
            json::parse(R"({"code": "upstream_error", "message": "The child's stream broke off."})"));
  EXPECT_EQ(stream.finish(), "");
  EXPECT_EQ(stream.on_error(500, "again"), "");
}

TEST(TranslateResponses, ChildsErrorChunkEndsTheStream) {
  // The real child's quota path writes `data: {"error": "..."}` (response_generators.py).
  Stream stream(json::parse(R"({"input": "x"})"), options());
  const auto events = parse_sse(stream.start() + stream.on_chunk(json::parse(R"({"error": "Auth rotation failed."})")));
  EXPECT_EQ(names_of(events),
            (std::vector<std::string>{"response.created", "response.in_progress", "error", "response.failed"}));
  EXPECT_EQ(events[2].data.at("message"), "Auth rotation failed.");
}

TEST(TranslateResponses, EmptyAndCutShortStreams) {
  Stream empty(json::parse(R"({"input": "x"})"), options());
  const auto nothing = parse_sse(empty.finish());
  EXPECT_EQ(names_of(nothing),
            (std::vector<std::string>{"response.created", "response.in_progress", "response.completed"}));
  expect_numbered(nothing);
  EXPECT_EQ(nothing[2].data.at("response").at("usage"), nullptr);

  Stream cut(json::parse(R"({"input": "x", "max_output_tokens": 5})"), options());
  std::string bytes = cut.on_chunk(child_chunk({{"content", "Once upon"}}));
  bytes += cut.on_chunk(last_child_chunk("length"));
  const auto events = parse_sse(bytes + cut.finish());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().name, "response.incomplete");
  EXPECT_EQ(events.back().data.at("response").at("incomplete_details").at("reason"), "max_output_tokens");
}

}  // namespace
}  // namespace coordinator::translate::responses
