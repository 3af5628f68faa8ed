#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/translate/anthropic_api.hpp"
#include "translate_sse.hpp"

namespace coordinator::translate::anthropic {
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

json chat_request(const char* request_text) {
  Result<json> result = to_chat_request(json::parse(request_text), options());
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? result.value() : json();
}

// The real child's non-streamed answer (request_processor.py, response_payloads.py).
json child_answer(json message, const char* finish_reason) {
  return {{"id", "chatcmpl-abc1234-1741476542"},
          {"object", "chat.completion"},
          {"created", 1741476542},
          {"model", "gemini-2.5-pro"},
          {"choices", {{{"index", 0}, {"message", message}, {"finish_reason", finish_reason}}}},
          {"usage", {{"prompt_tokens", 36}, {"completion_tokens", 87}, {"total_tokens", 123}}}};
}

json child_chunk(json delta, json finish_reason = nullptr) {
  return {{"id", "chatcmpl-abc1234-1741476542-512"},
          {"object", "chat.completion.chunk"},
          {"model", "gemini-2.5-pro"},
          {"created", 1741476542},
          {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish_reason}}}}};
}

json last_child_chunk(const char* finish_reason) {
  json chunk = child_chunk(json::object(), finish_reason);
  chunk["usage"] = {{"prompt_tokens", 25}, {"completion_tokens", 15}, {"total_tokens", 40}};
  return chunk;
}

const json kRequest = json::parse(R"({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": []})");

TEST(TranslateAnthropic, SimpleMessageBecomesAChatRequest) {
  EXPECT_EQ(chat_request(R"({"model": "claude-sonnet-4-5", "max_tokens": 1024,
                             "messages": [{"role": "user", "content": "Hello, world"}]})"),
            json::parse(R"({"model": "claude-sonnet-4-5", "max_output_tokens": 1024,
                            "messages": [{"role": "user", "content": "Hello, world"}]})"));
}

TEST(TranslateAnthropic, SystemBlocksSamplingAndStopSequences) {
  const json chat = chat_request(R"({
    "model": "claude-sonnet-4-5", "max_tokens": 512, "stream": true, "temperature": 0.5, "top_p": 0.8,
    "stop_sequences": ["\n\nHuman:", "END"], "metadata": {"user_id": "u-42"}, "service_tier": "auto",
    "system": [{"type": "text", "text": "You are a pirate.", "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": "Be brief."}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]},
                 {"role": "assistant", "content": "Arr."},
                 {"role": "user", "content": "Why?"}]})");
  EXPECT_EQ(chat, json::parse(R"({
    "model": "claude-sonnet-4-5", "max_output_tokens": 512, "stream": true, "temperature": 0.5, "top_p": 0.8,
    "stop": ["\n\nHuman:", "END"],
    "messages": [{"role": "system", "content": "You are a pirate.\nBe brief."},
                 {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Arr."},
                 {"role": "user", "content": "Why?"}]})"));
}

TEST(TranslateAnthropic, ModelAliasAppliesToTheChatRequestOnly) {
  const ModelAliases aliases = {{"claude-sonnet-4-5", "gemini-2.5-pro"}};
  Options with = options();
  with.model_aliases = &aliases;
  const json request = json::parse(R"({"model": "claude-sonnet-4-5", "max_tokens": 10,
                                       "messages": [{"role": "user", "content": "hi"}]})");
  const auto chat = to_chat_request(request, with);
  ASSERT_TRUE(chat.ok());
  EXPECT_EQ(chat.value().at("model"), "gemini-2.5-pro");
  const auto answer =
      from_chat_answer(request, child_answer({{"role", "assistant"}, {"content", "hello"}}, "stop"), with);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value().at("model"), "claude-sonnet-4-5");
}

TEST(TranslateAnthropic, ToolUseAndToolResultMakeTheChatRoundTrip) {
  const json chat = chat_request(R"({
    "model": "claude-sonnet-4-5", "max_tokens": 1024,
    "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
               "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                                "required": ["location"]}}],
    "tool_choice": {"type": "any"},
    "messages": [
      {"role": "user", "content": "What's the weather like in San Francisco?"},
      {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "I'll check the weather."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"location": "San Francisco, CA"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
        {"type": "text", "text": "And tomorrow?"}]}]})");
  EXPECT_EQ(chat, json::parse(R"({
    "model": "claude-sonnet-4-5", "max_output_tokens": 1024,
    "tools": [{"type": "function", "function": {"name": "get_weather",
               "description": "Get the current weather in a given location",
               "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                              "required": ["location"]}}}],
    "tool_choice": "required",
    "messages": [
      {"role": "user", "content": "What's the weather like in San Francisco?"},
      {"role": "assistant", "content": "I'll check the weather.", "tool_calls": [
        {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\"}"}}]},
      {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
      {"role": "user", "content": "And tomorrow?"}]})"));
}

TEST(TranslateAnthropic, ToolChoiceErrorResultsAndThinkingSettings) {
  json chat =
      chat_request(R"({"model": "m", "max_tokens": 5, "tools": [{"name": "f", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true},
      "thinking": {"type": "enabled", "budget_tokens": 2048},
      "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true,
                                                 "content": [{"type": "text", "text": "ENOENT"}]}]}]})");
  EXPECT_EQ(chat.at("tool_choice"), json::parse(R"({"type": "function", "function": {"name": "f"}})"));
  EXPECT_EQ(chat.at("parallel_tool_calls"), false);
  EXPECT_EQ(chat.at("reasoning_effort"), 2048);  // the child takes an int thinking budget
  EXPECT_EQ(chat.at("messages")[1],
            json::parse(R"({"role": "tool", "tool_call_id": "t1", "content": "Error: ENOENT"})"));
  EXPECT_EQ(chat.at("messages").size(), 2u);  // a user turn of tool results only adds no empty user message
  chat =
      chat_request(R"({"model": "m", "max_tokens": 5, "tool_choice": {"type": "none"}, "thinking": {"type": "disabled"},
                          "messages": [{"role": "user", "content": "x"}]})");
  EXPECT_EQ(chat.at("tool_choice"), "none");
  EXPECT_EQ(chat.at("reasoning_effort"), 0);
  EXPECT_EQ(chat_request(R"({"model": "m", "max_tokens": 5, "tool_choice": {"type": "auto"},
                             "messages": [{"role": "user", "content": "x"}]})")
                .at("tool_choice"),
            "auto");
}

struct Refusal {
  const char* request;
  const char* param;
};

TEST(TranslateAnthropic, WhatTheChildCannotDoIsRefusedAsInvalidRequest) {
  const Refusal refusals[] = {
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})", "max_tokens"},
      {R"({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})", "model"},
      {R"({"model": "m", "max_tokens": 5})", "messages"},
      {R"({"model": "m", "max_tokens": 5, "messages": []})", "messages"},
      {R"({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]})", "max_tokens"},
      {R"({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "What?"},
          {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}]}]})",
       "messages.0.content.1.type"},
      {R"({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
          {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]}]})",
       "messages.0.content.0.type"},
      {R"({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result",
          "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}]})",
       "messages.0.content.0.content.0.type"},
      {R"({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "search_result"}]}]})",
       "messages.0.content.0.type"},
      {R"({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [
          {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]})",
       "messages.0.content.0.type"},
      {R"({"model": "m", "max_tokens": 5, "tools": [{"type": "web_search_20250305", "name": "web_search"}],
          "messages": [{"role": "user", "content": "x"}]})",
       "tools.0.type"},
      {R"({"model": "m", "max_tokens": 5, "tools": [{"name": "f"}], "messages": [{"role": "user", "content": "x"}]})",
       "tools.0.input_schema"},
      {R"({"model": "m", "max_tokens": 5, "top_k": 40, "messages": [{"role": "user", "content": "x"}]})", "top_k"},
      {R"({"model": "m", "max_tokens": 5, "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}],
          "messages": [{"role": "user", "content": "x"}]})",
       "mcp_servers"},
      {R"({"model": "m", "max_tokens": 5, "container": "c1", "messages": [{"role": "user", "content": "x"}]})",
       "container"},
      {R"({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})", "messages.0.role"},
      {R"({"model": "m", "max_tokens": 5, "thinking": {"type": "sometimes"}, "messages": [{"role": "user", "content": "x"}]})",
       "thinking.type"},
      {R"({"model": "m", "max_tokens": 5, "thinking": {"type": "enabled"}, "messages": [{"role": "user", "content": "x"}]})",
       "thinking.budget_tokens"},
      {R"({"model": "m", "max_tokens": 5, "tool_choice": {"type": "tool"}, "messages": [{"role": "user", "content": "x"}]})",
       "tool_choice"},
      {R"({"model": "m", "max_tokens": 5, "stop_sequences": "END", "messages": [{"role": "user", "content": "x"}]})",
       "stop_sequences"},
      {R"({"model": "m", "max_tokens": 5, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]})",
       "system.0.type"},
  };
  for (const Refusal& refusal : refusals) {
    const Result<json> result = to_chat_request(json::parse(refusal.request), options());
    ASSERT_FALSE(result.ok()) << refusal.request;
    EXPECT_EQ(result.error().status, 400) << refusal.request;
    EXPECT_EQ(result.error().param, refusal.param) << refusal.request;
    // Anthropic's messages start with the field: "messages.0.content.1.type: ...".
    EXPECT_EQ(result.error().message.rfind(std::string(refusal.param) + ": ", 0), 0u) << result.error().message;
    EXPECT_EQ(error_body(result.error()).at("error").at("type"), "invalid_request_error");
  }
}

TEST(TranslateAnthropic, ErrorsHaveAnthropicsShapeAndStatusMapping) {
  EXPECT_EQ(error_body(429, "Number of requests has exceeded your rate limit"),
            json::parse(R"({"type": "error", "error": {"type": "rate_limit_error",
                             "message": "Number of requests has exceeded your rate limit"}})"));
  const std::pair<int, const char*> mapping[] = {{400, "invalid_request_error"},
                                                 {401, "authentication_error"},
                                                 {403, "permission_error"},
                                                 {404, "not_found_error"},
                                                 {413, "request_too_large"},
                                                 {500, "api_error"},
                                                 {502, "api_error"},
                                                 {503, "overloaded_error"},
                                                 {529, "overloaded_error"},
                                                 {504, "timeout_error"},
                                                 {418, "api_error"}};
  for (const auto& [status, type] : mapping) EXPECT_EQ(error_body(status, "x").at("error").at("type"), type) << status;
}

TEST(TranslateAnthropic, CountTokensIsAnEstimateAndNeedsNoMaxTokens) {
  const auto counted = count_tokens(json::parse(R"({"model": "claude-sonnet-4-5", "system": "Be nice.",
                                                    "messages": [{"role": "user", "content": "Hello, world"}]})"),
                                    options());
  ASSERT_TRUE(counted.ok());
  // "system: Be nice.\nuser: Hello, world\n" is 36 characters: 9 tokens, as the child would count them.
  EXPECT_EQ(counted.value(), json::parse(R"({"input_tokens": 9, "estimated": true})"));
  const auto with_tools =
      count_tokens(json::parse(R"({"model": "m", "messages": [{"role": "user", "content": "Hello, world"}],
      "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]})"),
                   options());
  ASSERT_TRUE(with_tools.ok());
  EXPECT_GT(with_tools.value().at("input_tokens").get<int>(), 9);
  EXPECT_FALSE(count_tokens(json::parse(R"({"model": "m", "messages": [{"role": "user", "content": [
      {"type": "image", "source": {}}]}]})"),
                            options())
                   .ok());
}

TEST(TranslateAnthropic, TextAnswerBecomesAMessage) {
  const json request = json::parse(R"({"model": "claude-sonnet-4-5", "max_tokens": 1024,
                                       "messages": [{"role": "user", "content": "Hello"}]})");
  const auto answer = from_chat_answer(
      request, child_answer({{"role", "assistant"}, {"content", "Hi! How can I help?"}}, "stop"), options());
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value(), json::parse(R"({"id": "msg_req1", "type": "message", "role": "assistant",
      "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": "Hi! How can I help?"}],
      "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 36, "output_tokens": 87}})"));
}

TEST(TranslateAnthropic, ChildToolCallsBecomeToolUseBlocks) {
  const json message = json::parse(R"({"role": "assistant", "content": "Checking.", "tool_calls": [
      {"id": "call_k3n8x2", "index": 0, "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}"}}]})");
  const auto answer = from_chat_answer(kRequest, child_answer(message, "tool_calls"), options());
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value().at("content"), json::parse(R"([{"type": "text", "text": "Checking."},
      {"type": "tool_use", "id": "call_k3n8x2", "name": "get_weather", "input": {"location": "San Francisco, CA"}}])"));
  EXPECT_EQ(answer.value().at("stop_reason"), "tool_use");
}

TEST(TranslateAnthropic, StopReasonMapping) {
  const auto stop_reason_of = [](json answer) {
    const auto message = from_chat_answer(kRequest, answer, options());
    EXPECT_TRUE(message.ok());
    return message.ok() ? message.value().at("stop_reason").get<std::string>() : std::string{};
  };
  const json text = {{"role", "assistant"}, {"content", "x"}};
  EXPECT_EQ(stop_reason_of(child_answer(text, "stop")), "end_turn");
  EXPECT_EQ(stop_reason_of(child_answer(text, "length")), "max_tokens");
  EXPECT_EQ(stop_reason_of(child_answer(text, "content_filter")), "refusal");
  json named = child_answer(text, "stop");  // a backend that names the stop sequence (vLLM's stop_reason)
  named["choices"][0]["stop_reason"] = "END";
  const auto message = from_chat_answer(kRequest, named, options());
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(message.value().at("stop_reason"), "stop_sequence");
  EXPECT_EQ(message.value().at("stop_sequence"), "END");
  EXPECT_FALSE(from_chat_answer(kRequest, json::parse(R"({"detail": "boom"})"), options()).ok());
}

TEST(TranslateAnthropic, StreamedTextFollowsTheDocumentedEventSequence) {
  Stream stream(kRequest, options());
  std::string bytes =
      stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "Hm"}}));
  bytes += stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", "Hello"}}));
  bytes += stream.on_chunk(child_chunk({{"role", "assistant"}, {"content", "!"}}));
  bytes += stream.on_chunk(last_child_chunk("stop"));
  bytes += stream.finish();
  const auto events = parse_sse(bytes);
  ASSERT_EQ(names_of(events),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(events[0].data, json::parse(R"({"type": "message_start", "message": {"id": "msg_req1", "type": "message",
      "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
      "usage": {"input_tokens": 0, "output_tokens": 0}}})"));
  EXPECT_EQ(events[1].data, json::parse(R"({"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})"));
  EXPECT_EQ(events[2].data, json::parse(R"({"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": "Hello"}})"));
  EXPECT_EQ(events[4].data, json::parse(R"({"type": "content_block_stop", "index": 0})"));
  EXPECT_EQ(events[5].data, json::parse(R"({"type": "message_delta",
      "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"input_tokens": 25, "output_tokens": 15}})"));
  EXPECT_EQ(events[6].data, json::parse(R"({"type": "message_stop"})"));
  EXPECT_EQ(stream.finish(), "");
  EXPECT_EQ(stream.keepalive(), "");
}

TEST(TranslateAnthropic, TextThenFragmentedToolCallAreTwoBlocks) {
  Stream stream(kRequest, options());
  std::string bytes = stream.on_chunk(child_chunk({{"content", "Let me check."}}));
  bytes += stream.on_chunk(child_chunk(json::parse(
      R"({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "get_weather"}}]})")));
  bytes += stream.on_chunk(child_chunk(json::parse(
      R"({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"arguments": "{\"location\":"}}]})")));
  bytes += stream.on_chunk(child_chunk(
      json::parse(R"({"tool_calls": [{"index": 0, "id": "call_x", "function": {"arguments": " \"Paris\"}"}}]})")));
  bytes += stream.on_chunk(last_child_chunk("tool_calls"));
  bytes += stream.finish();
  const auto events = parse_sse(bytes);
  ASSERT_EQ(names_of(events),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_stop", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(events[4].data, json::parse(R"({"type": "content_block_start", "index": 1,
      "content_block": {"type": "tool_use", "id": "call_x", "name": "get_weather", "input": {}}})"));
  EXPECT_EQ(events[5].data, json::parse(R"({"type": "content_block_delta", "index": 1,
      "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}})"));
  EXPECT_EQ(events[6].data.at("delta").at("partial_json"), " \"Paris\"}");
  EXPECT_EQ(events[7].data.at("index"), 1);
  EXPECT_EQ(events[8].data.at("delta").at("stop_reason"), "tool_use");
}

TEST(TranslateAnthropic, ChildsWholeToolCallsStreamAsToolUseBlocks) {
  Stream stream(kRequest, options());
  std::string bytes = stream.on_chunk(child_chunk(json::parse(R"({"tool_calls": [
      {"id": "call_aaaa", "index": 0, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"id": "call_bbbb", "index": 1, "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]})")));
  bytes += stream.on_chunk(last_child_chunk("tool_calls"));
  const auto events = parse_sse(bytes + stream.finish());
  ASSERT_EQ(names_of(events),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_stop", "content_block_start", "content_block_delta",
                                      "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(events[1].data.at("content_block").at("id"), "call_aaaa");
  EXPECT_EQ(events[2].data.at("delta").at("partial_json"), "{\"city\": \"Paris\"}");
  EXPECT_EQ(events[4].data.at("index"), 1);
  EXPECT_EQ(events[4].data.at("content_block").at("name"), "get_time");
}

TEST(TranslateAnthropic, KeepaliveIsAPingAndErrorsEndTheStream) {
  Stream stream(kRequest, options());
  EXPECT_EQ(stream.keepalive(), "event: ping\ndata: {\"type\":\"ping\"}\n\n");
  std::string bytes = stream.on_chunk(child_chunk({{"content", "Par"}}));
  bytes += stream.on_error(529, "Overloaded");
  const auto events = parse_sse(bytes);
  ASSERT_EQ(names_of(events),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta", "error"}));
  EXPECT_EQ(events[3].data,
            json::parse(R"({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})"));
  EXPECT_EQ(stream.finish(), "");
  EXPECT_EQ(stream.keepalive(), "");
  EXPECT_EQ(stream.on_chunk(child_chunk({{"content", "late"}})), "");

  Stream quota(kRequest, options());  // the real child's `data: {"error": "..."}`
  const auto quota_events = parse_sse(quota.on_chunk(json::parse(R"({"error": "Auth rotation timed out."})")));
  ASSERT_EQ(names_of(quota_events), (std::vector<std::string>{"message_start", "error"}));
  EXPECT_EQ(quota_events[1].data.at("error").at("type"), "api_error");
  EXPECT_EQ(quota_events[1].data.at("error").at("message"), "Auth rotation timed out.");
}

TEST(TranslateAnthropic, EmptyAndCutShortStreams) {
  Stream empty(kRequest, options());
  EXPECT_EQ(names_of(parse_sse(empty.finish())),
            (std::vector<std::string>{"message_start", "message_delta", "message_stop"}));
  Stream cut(kRequest, options());
  std::string bytes = cut.on_chunk(child_chunk({{"content", "Once"}}));
  bytes += cut.on_chunk(last_child_chunk("length"));
  const auto events = parse_sse(bytes + cut.finish());
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].data.at("delta").at("stop_reason"), "max_tokens");
}

}  // namespace
}  // namespace coordinator::translate::anthropic
