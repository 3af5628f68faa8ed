#include "coordinator/child_answers.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace coordinator {
namespace {

nlohmann::json error_of(const std::optional<std::string>& body) {
  EXPECT_TRUE(body.has_value());
  return body ? nlohmann::json::parse(*body).at("error") : nlohmann::json{};
}

TEST(ChildAnswers, RetriesOnlyWhereNoWorkWasDone) {
  // The real child's 503 (not ready, lock wait) and 530 (parked behind a spent
  // quota) never reached the page; 500/502/504 may have run the prompt.
  EXPECT_EQ(judge_status(503), StatusVerdict::try_next);
  EXPECT_EQ(judge_status(530), StatusVerdict::quota);
  EXPECT_EQ(judge_status(429), StatusVerdict::rate_limited);
  for (unsigned status : {200u, 400u, 401u, 422u, 499u, 500u, 502u, 504u, 520u}) {
    EXPECT_EQ(judge_status(status), StatusVerdict::relay) << status;
  }
}

TEST(ChildAnswers, RewrapsFastApiDetail) {
  const auto error = error_of(rewrap_child_error(500, R"({"detail":"[ab12cd3] Internal server error: boom"})"));
  EXPECT_EQ(error.at("message"), "[ab12cd3] Internal server error: boom");
  EXPECT_EQ(error.at("type"), "server_error");
  EXPECT_EQ(error.at("code"), "child_error");
  const auto timeout = error_of(rewrap_child_error(504, R"({"detail":"[ab12cd3] Request processing timed out."})"));
  EXPECT_EQ(timeout.at("code"), "upstream_timeout");
  const auto quota = error_of(rewrap_child_error(530, R"({"detail":"System state resolution timeout"})"));
  EXPECT_EQ(quota.at("code"), "quota_exhausted");
  const auto unavailable = error_of(rewrap_child_error(503, R"({"detail":"[x] Service unavailable"})"));
  EXPECT_EQ(unavailable.at("type"), "service_unavailable");
}

TEST(ChildAnswers, RewrapsValidationList) {
  const auto error = error_of(rewrap_child_error(
      422, R"({"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required","input":{}}]})"));
  EXPECT_EQ(error.at("message"), "body.messages: Field required");
  EXPECT_EQ(error.at("type"), "invalid_request_error");
  EXPECT_EQ(error.at("code"), "validation_error");
}

TEST(ChildAnswers, LeavesOpenAiShapeAndNonJsonAlone) {
  EXPECT_FALSE(rewrap_child_error(500, R"({"error":{"message":"m","type":"t","code":"c"}})"));
  EXPECT_FALSE(rewrap_child_error(502, "<html>bad gateway</html>"));
  EXPECT_FALSE(rewrap_child_error(500, R"(["detail"])"));
  EXPECT_FALSE(rewrap_child_error(500, ""));
  // A bare {"error": "text"} is the child's stream error shape: rewrapped.
  EXPECT_EQ(error_of(rewrap_child_error(500, R"({"error":"Auth rotation failed."})")).at("message"),
            "Auth rotation failed.");
}

TEST(ChildAnswers, FindsQuotaErrorsInEvents) {
  for (const char* message :
       {"Auth rotation failed.", "Auth rotation timed out.", "Max retries exhausted for quota recovery."}) {
    const std::string event = std::string("data: ") + nlohmann::json{{"error", message}}.dump();
    const auto error = stream_error_of(event);
    ASSERT_TRUE(error) << message;
    EXPECT_EQ(error->message, message);
    EXPECT_TRUE(error->quota) << message;
    EXPECT_FALSE(error->openai_shaped);
    EXPECT_EQ(classify_event(event), SseEventKind::error);
  }
  const auto shaped = stream_error_of(R"(data: {"error":{"message":"boom","type":"server_error","code":"x"}})");
  ASSERT_TRUE(shaped);
  EXPECT_TRUE(shaped->openai_shaped);
  EXPECT_FALSE(shaped->quota);
}

TEST(ChildAnswers, ClassifiesEvents) {
  EXPECT_EQ(classify_event(": processing auth rotation..."), SseEventKind::comment);
  EXPECT_EQ(classify_event(": keep-alive"), SseEventKind::comment);
  EXPECT_EQ(classify_event("data: [DONE]"), SseEventKind::done);
  EXPECT_EQ(classify_event(R"(data: {"id":"chatcmpl-ab12cd3-1","choices":[{"delta":{"content":"error"}}]})"),
            SseEventKind::data);
  EXPECT_EQ(classify_event(R"(data: {"choices":[{"delta":{"content":"\"error\""}}]})"), SseEventKind::data);
  EXPECT_EQ(classify_event("event: ping\r\ndata: {}"), SseEventKind::data);
  EXPECT_EQ(classify_event(R"(data: {"error": null})"), SseEventKind::data);
}

TEST(ChildAnswers, TellsWorkFromTheChildsEmptyChunks) {
  // response_generators.py: the "done" chunk (empty delta) and the usage chunk carry nothing.
  EXPECT_FALSE(is_substantive_event(R"(data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":null}]})"));
  EXPECT_FALSE(
      is_substantive_event(R"(data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}})"));
  EXPECT_FALSE(is_substantive_event(R"(data: {"choices":[{"delta":{"role":"assistant","content":""}}]})"));
  EXPECT_FALSE(is_substantive_event("data: [DONE]"));
  EXPECT_FALSE(is_substantive_event(": processing auth rotation..."));
  EXPECT_TRUE(is_substantive_event(R"(data: {"choices":[{"delta":{"content":"hi"}}]})"));
  EXPECT_TRUE(is_substantive_event(R"(data: {"choices":[{"delta":{"reasoning_content":"hm"}}]})"));
  EXPECT_TRUE(is_substantive_event(R"(data: {"choices":[{"delta":{"tool_calls":[{"index":0}]}}]})"));
  EXPECT_TRUE(is_substantive_event(R"(data: {"something":"else"})"));
  EXPECT_TRUE(is_substantive_event("data: not json"));
}

TEST(ChildAnswers, SplitsCompleteEvents) {
  const std::string bytes = ": one\n\ndata: two\r\n\r\ndata: thr";
  EXPECT_EQ(complete_events_end(bytes), bytes.find("data: thr"));
  EXPECT_EQ(complete_events_end("data: partial"), 0u);
  std::vector<std::string> events;
  for_each_event(bytes, [&](std::string_view event, std::string_view separator) {
    events.emplace_back(std::string(event) + "|" + std::to_string(separator.size()));
    return true;
  });
  EXPECT_EQ(events, (std::vector<std::string>{": one|2", "data: two|4"}));
}

constexpr std::string_view kContent = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
constexpr std::string_view kUsage =
    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":3}}\n\n";
constexpr std::string_view kDone = "data: [DONE]\n\n";
constexpr std::string_view kRotation = ": processing auth rotation (attempt 1)...\n\n";
constexpr std::string_view kQuotaError = "data: {\"error\": \"Auth rotation failed.\"}\n\n";

TEST(StreamGate, QuotaErrorAfterDoneWithNothingDeliveredIsARetry) {
  // response_generators.py: the usage chunk and [DONE] come first, then the rotation comments and the error.
  StreamGate gate;
  EXPECT_FALSE(gate.take(std::string(kUsage) + std::string(kDone)));
  EXPECT_EQ(gate.out, "");
  EXPECT_FALSE(gate.take(kRotation));
  EXPECT_EQ(gate.out, "");
  const auto error = gate.take(kQuotaError);
  ASSERT_TRUE(error);
  EXPECT_TRUE(error->quota);
  EXPECT_FALSE(gate.started);  // nothing delivered: the relay retries elsewhere
}

TEST(StreamGate, QuotaErrorAfterContentEndsTheStream) {
  StreamGate gate;
  EXPECT_FALSE(gate.take(kContent));
  EXPECT_TRUE(gate.started);
  EXPECT_EQ(gate.out, kContent);
  EXPECT_FALSE(gate.take(std::string(kUsage) + std::string(kDone) + std::string(kRotation)));
  EXPECT_EQ(gate.out, kUsage);  // [DONE] is held, the comment after it dropped
  const auto error = gate.take(kQuotaError);
  ASSERT_TRUE(error);
  EXPECT_EQ(gate.out, "");
}

TEST(StreamGate, CleanStreamPassesThroughInOrder) {
  StreamGate gate;
  const std::string stream = std::string(kUsage) + std::string(kContent) + ": heartbeat\n\n" + std::string(kContent) +
                             std::string(kUsage) + std::string(kDone);
  std::string sent;
  // Byte by byte: events split across reads arrive whole, in order.
  for (char c : stream) {
    EXPECT_FALSE(gate.take(std::string_view(&c, 1)));
    sent += gate.out;
  }
  sent += gate.finish();
  EXPECT_EQ(sent, stream);
}

TEST(StreamGate, CommentsBeforeTheStartAreDropped) {
  StreamGate gate;
  EXPECT_FALSE(gate.take(std::string(kRotation) + std::string(kContent)));
  EXPECT_EQ(gate.out, kContent);
}

TEST(StreamGate, AnEmptyAnswerIsDeliveredAtTheEnd) {
  StreamGate gate;
  EXPECT_FALSE(gate.take(std::string(kUsage) + std::string(kDone)));
  EXPECT_FALSE(gate.started);
  EXPECT_EQ(gate.finish(), std::string(kUsage) + std::string(kDone));
}

TEST(ChildAnswers, ReadsReqIdFromEveryIdForm) {
  // response_payloads.py: {prefix}{req_id}-{ts}
  EXPECT_EQ(req_id_of_completion_id("chatcmpl-ab12cd3-1764580000"), "ab12cd3");
  // response_generators.py: {prefix}{req_id}-{ts}-{rand 100..999}
  EXPECT_EQ(req_id_of_completion_id("chatcmpl-ab12cd3-1764580000-517"), "ab12cd3");
  // sse.py (no stream proxy): chatcmpl-{req_id}
  EXPECT_EQ(req_id_of_completion_id("chatcmpl-ab12cd3"), "ab12cd3");
  // CHAT_COMPLETION_ID_PREFIX replaces chatcmpl- in the first two forms, with any text.
  EXPECT_EQ(req_id_of_completion_id("my-proxy_0000000-ab12cd3-1764580000-517"), "ab12cd3");
  EXPECT_EQ(req_id_of_completion_id("x9z0y8w-1764580000"), "x9z0y8w");
  EXPECT_EQ(req_id_of_completion_id("1234567-1764580000"), "1234567");
}

TEST(ChildAnswers, RefusesOtherIds) {
  EXPECT_FALSE(req_id_of_completion_id("chatcmpl-AB12CD3-1764580000"));  // upper case: not the child's
  EXPECT_FALSE(req_id_of_completion_id("chatcmpl-ab12cd-1764580000"));   // 6 characters
  EXPECT_FALSE(req_id_of_completion_id("chatcmpl-ab12cd3-17"));          // not a timestamp
  EXPECT_FALSE(req_id_of_completion_id("chatcmpl-ab12cd3-1764580000-5170"));
  EXPECT_FALSE(req_id_of_completion_id("cmpl-ab12cd3"));  // chatcmpl-{req_id} has no custom prefix
  EXPECT_FALSE(req_id_of_completion_id("ab1-1764580000"));
  EXPECT_FALSE(req_id_of_completion_id(""));
  EXPECT_FALSE(req_id_of_completion_id("-"));
}

TEST(ChildAnswers, ExtractsReqIdFromAnswerBytes) {
  EXPECT_EQ(extract_req_id(R"(data: {"id":"chatcmpl-ab12cd3-1764580000-123","object":"chat.completion.chunk"})"),
            "ab12cd3");
  EXPECT_EQ(extract_req_id(R"(data: {"id": "chatcmpl-ab12cd3-1764580000"})"), "ab12cd3");
  EXPECT_EQ(extract_req_id(": processing auth rotation...\n\ndata: {\"id\":\"chatcmpl-q1w2e3r\"}"), "q1w2e3r");
  EXPECT_FALSE(extract_req_id(R"(data: {"id":"chatcmpl-ab12cd3-1764580000)"));  // unterminated
  EXPECT_FALSE(extract_req_id(R"({"object":"chat.completion"})"));
  EXPECT_FALSE(extract_req_id("data: {\"id\":\"" + std::string(300, 'a') + "-1764580000\"}"));
  EXPECT_FALSE(extract_req_id(""));
}

}  // namespace
}  // namespace coordinator
