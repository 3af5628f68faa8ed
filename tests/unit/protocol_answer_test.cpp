#include "coordinator/protocol_answer.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/api_keys.hpp"
#include "coordinator/config.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/routes.hpp"
#include "translate_sse.hpp"

namespace coordinator {
namespace {

using nlohmann::json;
using translate::testing::names_of;
using translate::testing::parse_sse;

translate::Options options() {
  translate::Options out;
  out.id_base = "req1";
  out.created = 1741476542;
  return out;
}

ProtocolAnswer anthropic_answer() {
  const json request = {
      {"model", "claude-x"}, {"max_tokens", 100}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  return ProtocolAnswer(ClientProtocol::anthropic, request, "claude-x", options());
}

// The child's stream as the real child frames it (api_utils/utils_ext/sse.py):
// a role chunk, text deltas, then a last chunk with finish_reason and usage, then [DONE].
const std::string kChildStream =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
    "\"total_tokens\":5}}\n\n"
    "data: [DONE]\n\n";

std::string text_of(const std::vector<translate::testing::SseEvent>& events) {
  std::string text;
  for (const auto& event : events) {
    if (event.name == "content_block_delta" && event.data["delta"]["type"] == "text_delta") {
      text += event.data["delta"]["text"].get<std::string>();
    }
  }
  return text;
}

TEST(ProtocolAnswerTest, AStreamSplitAnywhereGivesTheSameEvents) {
  ProtocolAnswer whole = anthropic_answer();
  std::string at_once = whole.stream_start();  // one call a statement: operands of + run in any order
  at_once += whole.stream_bytes(kChildStream);
  at_once += whole.stream_finish();
  ProtocolAnswer bytewise = anthropic_answer();
  std::string piecewise = bytewise.stream_start();
  for (char c : kChildStream) piecewise += bytewise.stream_bytes(std::string(1, c));
  piecewise += bytewise.stream_finish();
  EXPECT_EQ(piecewise, at_once);
  const auto events = parse_sse(at_once);
  EXPECT_EQ(names_of(events),
            (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(text_of(events), "Hello");
  EXPECT_EQ(events[5].data["usage"]["output_tokens"], 2);
}

TEST(ProtocolAnswerTest, CrlfFramingAndChildCommentsAreRead) {
  std::string crlf;
  for (char c : kChildStream) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  ProtocolAnswer answer = anthropic_answer();
  const std::string out = answer.stream_bytes(": ping from the child\r\n\r\n" + crlf);
  // The child's comment became Anthropic's ping; the rest its events.
  const auto events = parse_sse(out);
  ASSERT_GE(events.size(), 2U);
  EXPECT_EQ(events[0].name, "ping");
  EXPECT_EQ(events[1].name, "message_start");
  EXPECT_EQ(text_of(events), "Hello");
}

TEST(ProtocolAnswerTest, AnErrorEventEndsTheStreamInTheProtocolsShape) {
  ProtocolAnswer answer = anthropic_answer();
  std::string out = answer.stream_bytes(kChildStream.substr(0, kChildStream.find("data: {\"id\":\"chatcmpl-1\"", 10)));
  out += answer.stream_bytes(stream_abort_events(errc::stream_quota_exhausted, "quota spent"));
  const auto events = parse_sse(out);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().name, "error");
  EXPECT_EQ(events.back().data["error"]["type"], "rate_limit_error");
  EXPECT_EQ(events.back().data["error"]["message"], "quota spent");
  // Nothing after the error: [DONE] and later bytes are dropped.
  EXPECT_EQ(answer.stream_bytes("data: [DONE]\n\n"), "");
  EXPECT_EQ(answer.stream_finish(), "");
}

TEST(ProtocolAnswerTest, AMalformedChildEventEndsTheStreamWithA502) {
  ProtocolAnswer answer(ClientProtocol::gemini, json::object(), "gemini-2.5-pro", options());
  const auto events = parse_sse(answer.stream_bytes("data: {not json\n\n"));
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].data["error"]["code"], 502);
}

TEST(ProtocolAnswerTest, KeepAliveIsThePingOrAComment) {
  ProtocolAnswer anthropic = anthropic_answer();
  EXPECT_NE(anthropic.keepalive().find("event: ping"), std::string::npos);
  ProtocolAnswer gemini(ClientProtocol::gemini, json::object(), "m", options());
  EXPECT_EQ(gemini.keepalive().front(), ':');
}

TEST(ProtocolAnswerTest, AWholeAnswerIsTranslated) {
  const json request = {{"model", "gpt-x"}, {"input", "hi"}};
  ProtocolAnswer answer(ClientProtocol::responses, request, "gpt-x", options());
  const std::string chat =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})";
  const ProtocolAnswer::Whole whole = answer.whole(200, chat);
  EXPECT_EQ(whole.status, 200U);
  const json body = json::parse(whole.body);
  EXPECT_EQ(body["object"], "response");
  EXPECT_EQ(body["output"][0]["content"][0]["text"], "Hello");
  EXPECT_EQ(body["usage"]["total_tokens"], 5);
}

TEST(ProtocolAnswerTest, AChildErrorKeepsItsStatusInTheProtocolsShape) {
  ProtocolAnswer answer = anthropic_answer();
  const ProtocolAnswer::Whole whole =
      answer.whole(429, R"({"error":{"message":"slow down","type":"rate_limit_exceeded","code":null}})");
  EXPECT_EQ(whole.status, 429U);
  const json body = json::parse(whole.body);
  EXPECT_EQ(body["type"], "error");
  EXPECT_EQ(body["error"]["type"], "rate_limit_error");
  EXPECT_EQ(body["error"]["message"], "slow down");
  const ProtocolAnswer::Whole garbage = answer.whole(200, "<html>");
  EXPECT_EQ(garbage.status, 502U);
  EXPECT_EQ(json::parse(garbage.body)["error"]["type"], "api_error");
}

TEST(ProtocolAnswerTest, AJsonAnswerToAStreamRequestBecomesAStream) {
  // The real child answers a forced tool call with JSON even for a stream
  // (api_utils/request_processor.py): the client still gets its events.
  ProtocolAnswer answer = anthropic_answer();
  const std::string chat =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"claude-x","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",)"
      R"("function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],)"
      R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})";
  const auto events = parse_sse(answer.stream_from_whole(chat));
  ASSERT_GE(events.size(), 5U);
  EXPECT_EQ(events.front().name, "message_start");
  EXPECT_EQ(events.back().name, "message_stop");
  bool tool_use = false;
  std::string arguments;
  for (const auto& event : events) {
    if (event.name == "content_block_start" && event.data["content_block"]["type"] == "tool_use") {
      tool_use = event.data["content_block"]["name"] == "get_weather";
    }
    if (event.name == "content_block_delta" && event.data["delta"]["type"] == "input_json_delta") {
      arguments += event.data["delta"]["partial_json"].get<std::string>();
    }
    if (event.name == "message_delta") {
      EXPECT_EQ(event.data["delta"]["stop_reason"], "tool_use");
    }
  }
  EXPECT_TRUE(tool_use);
  EXPECT_EQ(json::parse(arguments), json({{"city", "Paris"}}));
}

TEST(ProtocolAnswerTest, OwnErrorsCarryTheCoordinatorsCodeWhereTheProtocolHasOne) {
  const json body = json::parse(protocol_error_json(ClientProtocol::responses, 429, "spent", "quota_exhausted"));
  EXPECT_EQ(body["error"]["code"], "quota_exhausted");
  EXPECT_EQ(json::parse(protocol_error_json(ClientProtocol::gemini, 429, "spent"))["error"]["status"],
            "RESOURCE_EXHAUSTED");
  EXPECT_EQ(status_of_code("upstream_timeout"), 504U);
  EXPECT_EQ(status_of_code("quota_exhausted"), 429U);
  EXPECT_FALSE(status_of_code("a_child_code").has_value());
}

TEST(ProtocolRoutesTest, KeysComeFromEveryPlaceClientsPutThem) {
  EXPECT_EQ(presented_key(KeyCarriers{"Bearer a", "b", "c", "d"}), "a");
  EXPECT_EQ(presented_key(KeyCarriers{"", " b ", "c", "d"}), "b");
  EXPECT_EQ(presented_key(KeyCarriers{"", "", "c", "d"}), "c");
  EXPECT_EQ(presented_key(KeyCarriers{"", "", "", "d"}), "d");
  EXPECT_FALSE(presented_key(KeyCarriers{"Basic x", "", "", ""}).has_value());
}

TEST(ProtocolRoutesTest, QueryParametersAreFoundByName) {
  EXPECT_EQ(query_param("/v1beta/models/m:streamGenerateContent?alt=sse&key=k1", "key"), "k1");
  EXPECT_EQ(query_param("/v1beta/models/m:streamGenerateContent?alt=sse&key=k1", "alt"), "sse");
  EXPECT_EQ(query_param("/x?akey=1&key=2#frag", "key"), "2");
  EXPECT_EQ(query_param("/x?key", "key"), "");
  EXPECT_EQ(query_param("/x", "key"), "");
}

TEST(ProtocolRoutesTest, GeminiPathsNameTheModelAndTheMethod) {
  const GeminiTarget generate = parse_gemini_target("/v1beta/models/gemini-2.5-pro:generateContent");
  EXPECT_EQ(generate.model, "gemini-2.5-pro");
  EXPECT_EQ(generate.method, "generateContent");
  const GeminiTarget info = parse_gemini_target("/v1beta/models/gemini-2.5-pro");
  EXPECT_EQ(info.model, "gemini-2.5-pro");
  EXPECT_EQ(info.method, "");
  EXPECT_EQ(protocol_of_path("/v1beta/models"), ClientProtocol::gemini);
  EXPECT_EQ(protocol_of_path("/v1/messages/count_tokens"), ClientProtocol::anthropic);
  EXPECT_EQ(protocol_of_path("/v1/responses"), ClientProtocol::responses);
  EXPECT_FALSE(protocol_of_path("/v1/chat/completions").has_value());
  EXPECT_EQ(match_route("/v1/messages").id, RouteId::messages);
  EXPECT_EQ(match_route("/v1/messages/count_tokens").id, RouteId::count_tokens);
  EXPECT_EQ(match_route("/v1beta/models/x:generateContent").id, RouteId::gemini_model);
  EXPECT_EQ(match_route("/v1beta/other").id, RouteId::not_found);
  EXPECT_TRUE(needs_key(match_route("/v1beta/other"), false));
}

TEST(ProtocolRoutesTest, ModelAliasesAreFromEqualsTo) {
  const auto alias = parse_model_alias("claude-sonnet-4=gemini-2.5-pro");
  ASSERT_TRUE((std::holds_alternative<std::pair<std::string, std::string>>(alias)));
  EXPECT_EQ(std::get<0>(alias).first, "claude-sonnet-4");
  EXPECT_EQ(std::get<0>(alias).second, "gemini-2.5-pro");
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_model_alias("no-equals")));
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_model_alias("=to")));
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_model_alias("from=")));
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_model_alias("a b=c")));
}

}  // namespace
}  // namespace coordinator
