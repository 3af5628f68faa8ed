#include "coordinator/usage.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>

using namespace coordinator;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

std::chrono::system_clock::time_point at(int y, unsigned m, unsigned d, std::chrono::nanoseconds since_midnight = {}) {
  return std::chrono::sys_days{std::chrono::year{y} / m / d} + since_midnight;
}

const auto kNoon = at(2024, 5, 1, 12h);

// A non-streamed answer as the real child builds it (api_utils/response_payloads.py).
const char* const kChildAnswer = R"({"id":"chatcmpl-abc1234-1714564800","object":"chat.completion",
  "created":1714564800,"model":"gemini-2.5-pro",
  "choices":[{"index":0,"message":{"role":"assistant","content":"Hello! usage: none here"},
              "finish_reason":"stop","native_finish_reason":"stop"}],
  "usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46},
  "system_fingerprint":"camoufox-proxy","seed":0,"response_format":{}})";

// The last chunk of the real child's stream (api_utils/response_generators.py).
const char* const kChildUsageChunk =
    R"({"id":"chatcmpl-abc1234-1714564800","object":"chat.completion.chunk","model":"gemini-2.5-pro",)"
    R"("created":1714564800,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}})";

std::string prometheus(const UsageBook& book) {
  std::string out;
  book.append_prometheus(out);
  return out;
}

}  // namespace

TEST(KeyId, IsAShortHashPrefixNeverTheKey) {
  // sha256("sk-test-123") = e0dbaa0c..., sha256("abc") = ba7816bf...
  EXPECT_EQ(key_id("sk-test-123"), "key-e0dbaa0c");
  EXPECT_EQ(key_id("abc"), "key-ba7816bf");
  EXPECT_EQ(key_id(""), kNoKeyId);
  EXPECT_NE(key_id("sk-test-124"), key_id("sk-test-123"));
  EXPECT_TRUE(is_key_id(key_id("anything")));
  EXPECT_TRUE(is_key_id("none"));
  for (const char* text : {"", "key-", "key-e0dbaa0", "key-e0dbaa0cc", "key-E0DBAA0C", "key-e0dbaa0g", "sk-test-123"}) {
    EXPECT_FALSE(is_key_id(text)) << text;
  }
}

TEST(UsageFromAnswer, ReadsTheRealChildsUsage) {
  EXPECT_EQ(usage_from_answer(kChildAnswer), (TokenUsage{12, 34, 46}));
}

TEST(UsageFromAnswer, ComputesAMissingTotalAndKeepsAGivenOne) {
  EXPECT_EQ(usage_from_answer(R"({"usage":{"prompt_tokens":5,"completion_tokens":6}})"), (TokenUsage{5, 6, 11}));
  EXPECT_EQ(usage_from_answer(R"({"usage":{"prompt_tokens":5}})"), (TokenUsage{5, 0, 5}));
  // A server that counts reasoning in the total only: its total is kept.
  EXPECT_EQ(usage_from_answer(R"({"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":20}})"),
            (TokenUsage{5, 6, 20}));
}

TEST(UsageFromAnswer, TakesFloatsAndTreatsOtherFieldTypesAsAbsent) {
  EXPECT_EQ(usage_from_answer(R"({"usage":{"prompt_tokens":5.0,"completion_tokens":2.9}})"), (TokenUsage{5, 2, 7}));
  EXPECT_EQ(usage_from_answer(R"({"usage":{"prompt_tokens":"5","completion_tokens":-3,"total_tokens":4}})"),
            (TokenUsage{0, 0, 4}));
  EXPECT_EQ(usage_from_answer(R"({"usage":{"prompt_tokens":1e300,"completion_tokens":2}})"), (TokenUsage{0, 2, 2}));
  EXPECT_EQ(usage_from_answer(R"({"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":1}})"),
            (TokenUsage{std::numeric_limits<std::uint64_t>::max(), 1, std::numeric_limits<std::uint64_t>::max()}));
}

TEST(UsageFromAnswer, NoUsageIsNullopt) {
  for (const char* body :
       {"", "null", "[]", "42", "\"usage\"", "{", "{}", R"({"usage":null})", R"({"usage":{}})", R"({"usage":[1,2]})",
        R"({"usage":{"prompt_tokens":null,"completion_tokens":"x"}})", R"([{"usage":{"prompt_tokens":5}}])",
        "{\"usage\":{\"prompt_tokens\":5}}junk", R"({"detail":"[abc1234] Quota exceeded"})"}) {
    EXPECT_FALSE(usage_from_answer(body)) << body;
  }
}

TEST(UsageFromAnswer, OnlyTheTopLevelUsageCounts) {
  // A "usage" inside the content (a tool call's arguments, say) is not the answer's usage.
  EXPECT_FALSE(usage_from_answer(R"({"choices":[{"message":{"usage":{"prompt_tokens":5}}}],"x":{"usage":1}})"));
  EXPECT_EQ(usage_from_answer(R"({"choices":[{"usage":{"prompt_tokens":99}}],"usage":{"prompt_tokens":1}})"),
            (TokenUsage{1, 0, 1}));
}

TEST(UsageFromAnswer, NeverThrowsOnAnyPrefixOfAnAnswer) {
  const std::string answer = kChildAnswer;
  for (std::size_t length = 0; length < answer.size(); ++length) {
    std::optional<TokenUsage> usage;
    EXPECT_NO_THROW(usage = usage_from_answer(std::string_view(answer).substr(0, length)));
    EXPECT_FALSE(usage) << length;  // cut short: no JSON document
  }
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(usage_from_answer("{\"usage\":" + deep + "}"));
  EXPECT_FALSE(usage_from_answer("{\"other\":" + deep + ",\"usage\":{\"prompt_tokens\":\x01}}"));
}

TEST(UsageFromStreamChunk, ReadsTheRealChildsLastChunk) {
  EXPECT_EQ(usage_from_stream_chunk(kChildUsageChunk), (TokenUsage{7, 3, 10}));
  EXPECT_EQ(usage_from_stream_chunk(std::string(" ") + kChildUsageChunk + "\r"), (TokenUsage{7, 3, 10}));
}

TEST(UsageFromStreamChunk, ContentDoneErrorsAndGarbageCarryNoUsage) {
  for (const char* payload :
       {"[DONE]", " [DONE]", "", R"({"choices":[{"index":0,"delta":{"content":"the word \"usage\""}}]})",
        R"({"choices":[],"usage":null})", R"({"error":"Auth rotation failed."})",
        R"({"error":{"message":"x","type":"upstream_error","code":"quota_exhausted"}})", "\"usage\"",
        "{\"usage\":", "data: {\"usage\":{\"prompt_tokens\":1}}"}) {
    EXPECT_FALSE(usage_from_stream_chunk(payload)) << payload;
  }
}

TEST(StatusClass, GroupsStatuses) {
  EXPECT_EQ(status_class(200), StatusClass::s2xx);
  EXPECT_EQ(status_class(299), StatusClass::s2xx);
  EXPECT_EQ(status_class(404), StatusClass::s4xx);
  EXPECT_EQ(status_class(499), StatusClass::s4xx);
  EXPECT_EQ(status_class(530), StatusClass::s5xx);
  EXPECT_EQ(status_class(0), StatusClass::other);
  EXPECT_EQ(status_class(101), StatusClass::other);
  EXPECT_EQ(status_class(302), StatusClass::other);
  EXPECT_EQ(status_class(600), StatusClass::other);
  EXPECT_EQ(to_string(StatusClass::s5xx), "5xx");
}

TEST(UsageBook, CountsRequestsAndTokensByChildAndKey) {
  UsageBook book;
  const std::string alice = key_id("sk-alice"), bob = key_id("sk-bob");
  book.record_request("p1", alice, 200, kNoon);
  book.record_request("p1", alice, 200, kNoon);
  book.record_request("p2", alice, 503, kNoon);
  book.record_request("p2", bob, 429, kNoon);
  book.record_request("", std::string(kNoKeyId), 0, kNoon);
  book.record_tokens("p1", alice, {10, 20, 30}, kNoon);
  book.record_tokens("p2", bob, {1, 2, 3}, kNoon);

  const json usage = book.to_admin_json(kNoon);
  EXPECT_EQ(usage["since"], "2024-05-01T12:00:00.000Z");
  EXPECT_EQ(usage["day"], "2024-05-01");
  const json& totals = usage["totals"];
  EXPECT_EQ(totals["requests"], (json{{"2xx", 2}, {"4xx", 1}, {"5xx", 1}, {"other", 1}, {"all", 5}}));
  EXPECT_EQ(totals["tokens"], (json{{"prompt", 11}, {"completion", 22}, {"total", 33}}));
  EXPECT_EQ(totals["by_child"]["p1"]["requests"]["2xx"], 2);
  EXPECT_EQ(totals["by_child"]["p1"]["tokens"]["total"], 30);
  EXPECT_EQ(totals["by_child"]["p2"]["requests"]["all"], 2);
  EXPECT_EQ(totals["by_child"][""]["requests"]["other"], 1);
  EXPECT_EQ(totals["by_key"][alice]["requests"]["all"], 3);
  EXPECT_EQ(totals["by_key"][alice]["tokens"]["prompt"], 10);
  EXPECT_EQ(totals["by_key"][bob]["requests"]["4xx"], 1);
  EXPECT_EQ(totals["by_key"]["none"]["requests"]["other"], 1);
  EXPECT_EQ(usage["today"], totals);
}

TEST(UsageBook, TodayRollsOverAtUtcMidnight) {
  UsageBook book;
  const std::string key = key_id("k");
  book.record_request("p1", key, 200, at(2024, 5, 1, 23h + 59min + 59s + 999ms));
  book.record_tokens("p1", key, {1, 1, 2}, at(2024, 5, 1, 23h + 59min + 59s + 999ms));
  const auto midnight = at(2024, 5, 2);

  // Read only: a new day shows an empty "today" before anything is recorded in it.
  json usage = book.to_admin_json(midnight);
  EXPECT_EQ(usage["day"], "2024-05-02");
  EXPECT_EQ(usage["today"]["requests"]["all"], 0);
  EXPECT_TRUE(usage["today"]["by_child"].empty());
  EXPECT_EQ(usage["totals"]["requests"]["all"], 1);

  book.record_request("p2", key, 500, midnight);
  usage = book.to_admin_json(midnight + 1h);
  EXPECT_EQ(usage["today"]["requests"], (json{{"2xx", 0}, {"4xx", 0}, {"5xx", 1}, {"other", 0}, {"all", 1}}));
  EXPECT_EQ(usage["today"]["tokens"]["total"], 0);
  EXPECT_FALSE(usage["today"]["by_child"].contains("p1"));  // nothing today
  EXPECT_EQ(usage["totals"]["requests"]["all"], 2);
  EXPECT_EQ(usage["totals"]["tokens"]["total"], 2);
  EXPECT_EQ(usage["since"], "2024-05-01T23:59:59.999Z");
}

TEST(UsageBook, ARecordFromAnEarlierDayCountsInTheTotalsOnly) {
  UsageBook book;
  book.record_request("p1", "none", 200, at(2024, 5, 2, 1h));
  book.record_request("p1", "none", 200, at(2024, 5, 1, 23h));  // the clock stepped back
  const json usage = book.to_admin_json(at(2024, 5, 1, 23h));
  EXPECT_EQ(usage["day"], "2024-05-02");
  EXPECT_EQ(usage["today"]["requests"]["all"], 1);
  EXPECT_EQ(usage["totals"]["requests"]["all"], 2);
  EXPECT_EQ(usage["since"], "2024-05-01T23:00:00.000Z");
}

TEST(UsageBook, ARawKeyIsHashedBeforeItIsStored) {
  UsageBook book;
  book.record_request("p1", "sk-live-SECRET", 200, kNoon);
  book.record_tokens("p1", "sk-live-SECRET", {1, 2, 3}, kNoon);
  const std::string everything = book.to_admin_json(kNoon).dump() + prometheus(book) + book.to_state().dump();
  EXPECT_EQ(everything.find("SECRET"), std::string::npos);
  EXPECT_NE(everything.find(key_id("sk-live-SECRET")), std::string::npos);
  ASSERT_EQ(book.entries().size(), 1u);
}

TEST(UsageBook, CountersSaturateInsteadOfWrapping) {
  UsageBook book;
  const auto max = std::numeric_limits<std::uint64_t>::max();
  book.record_tokens("p1", "none", {max, max - 1, max}, kNoon);
  book.record_tokens("p1", "none", {5, 5, 5}, kNoon);
  const auto& entry = book.entries().begin()->second;
  EXPECT_EQ(entry.totals.tokens, (TokenUsage{max, max, max}));
}

TEST(UsageBook, PrometheusLinesWithEscapedLabels) {
  UsageBook book;
  const std::string key = key_id("k");
  book.record_tokens("we\"ird\\na\nme", key, {1, 2, 3}, kNoon);
  book.record_request("we\"ird\\na\nme", key, 200, kNoon);
  book.record_request("p2", key, 404, kNoon);
  const std::string expected =
      "# HELP coordinator_tokens_total Tokens the children reported in their answers' usage, by child and key.\n"
      "# TYPE coordinator_tokens_total counter\n"
      "coordinator_tokens_total{child=\"p2\",key=\"" +
      key +
      "\",kind=\"prompt\"} 0\n"
      "coordinator_tokens_total{child=\"p2\",key=\"" +
      key +
      "\",kind=\"completion\"} 0\n"
      "coordinator_tokens_total{child=\"p2\",key=\"" +
      key +
      "\",kind=\"total\"} 0\n"
      "coordinator_tokens_total{child=\"we\\\"ird\\\\na\\nme\",key=\"" +
      key +
      "\",kind=\"prompt\"} 1\n"
      "coordinator_tokens_total{child=\"we\\\"ird\\\\na\\nme\",key=\"" +
      key +
      "\",kind=\"completion\"} 2\n"
      "coordinator_tokens_total{child=\"we\\\"ird\\\\na\\nme\",key=\"" +
      key +
      "\",kind=\"total\"} 3\n"
      "# HELP coordinator_requests_by_key_total Requests answered, by API key id and status class.\n"
      "# TYPE coordinator_requests_by_key_total counter\n"
      "coordinator_requests_by_key_total{key=\"" +
      key +
      "\",class=\"2xx\"} 1\n"
      "coordinator_requests_by_key_total{key=\"" +
      key +
      "\",class=\"4xx\"} 1\n"
      "coordinator_requests_by_key_total{key=\"" +
      key +
      "\",class=\"5xx\"} 0\n"
      "coordinator_requests_by_key_total{key=\"" +
      key + "\",class=\"other\"} 0\n";
  EXPECT_EQ(prometheus(book), expected);
}

TEST(UsageBook, PrometheusWithNothingCountedHasOnlyHeaders) {
  const std::string text = prometheus(UsageBook{});
  EXPECT_NE(text.find("# TYPE coordinator_tokens_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE coordinator_requests_by_key_total counter\n"), std::string::npos);
  EXPECT_EQ(text.find("{"), std::string::npos);
}

TEST(UsageBook, StateRoundTripsThroughText) {
  UsageBook book;
  book.record_request("p1", key_id("a"), 200, at(2024, 5, 1, 8h));
  book.record_request("p1", key_id("a"), 200, at(2024, 5, 2, 8h));
  book.record_tokens("p2", key_id("b"), {4, 5, 9}, at(2024, 5, 2, 9h));
  const json text_round_trip = json::parse(book.to_state().dump());
  const UsageBook restored = UsageBook::from_state(text_round_trip);
  EXPECT_EQ(restored.to_state(), book.to_state());
  const auto now = at(2024, 5, 2, 10h);
  EXPECT_EQ(restored.to_admin_json(now), book.to_admin_json(now));
  EXPECT_EQ(restored.to_admin_json(now)["today"]["requests"]["all"], 1);
  EXPECT_EQ(restored.to_admin_json(now)["totals"]["requests"]["all"], 2);
}

TEST(UsageBook, FromStateSkipsWhatDoesNotParse) {
  const json state = json::parse(R"({
    "since": "not a time", "day": "2024-05-01",
    "entries": [
      {"child": "p1", "key": "none", "totals": {"requests": {"2xx": 3, "4xx": -1, "5xx": "x"},
                                                "tokens": {"prompt": 1.5, "total": [1]}},
                                     "today": {"requests": {"2xx": 2}}},
      {"child": "p1", "key": "sk-raw-key-in-the-file", "totals": {"requests": {"2xx": 9}}},
      {"child": 7, "key": "none"}, {"key": "none"}, "junk", null,
      {"child": "p2", "key": "none", "totals": "junk", "today": 5}
    ]})");
  const UsageBook book = UsageBook::from_state(state);
  ASSERT_EQ(book.entries().size(), 2u);
  const auto& p1 = book.entries().begin()->second;
  EXPECT_EQ(p1.totals.requests, (std::array<std::uint64_t, kStatusClassCount>{3, 0, 0, 0}));
  EXPECT_EQ(p1.totals.tokens, (TokenUsage{1, 0, 0}));
  EXPECT_EQ(p1.today.requests[0], 2u);
  const json usage = book.to_admin_json(at(2024, 5, 1, 13h));
  EXPECT_TRUE(usage["since"].is_null());
  EXPECT_EQ(usage["today"]["requests"]["2xx"], 2);
  EXPECT_EQ(usage.dump().find("sk-raw"), std::string::npos);
}

TEST(UsageBook, FromStateWithoutADayDropsTodaysCounts) {
  const json state = json::parse(R"({"entries":[{"child":"p","key":"none","totals":{"requests":{"2xx":2}},
                                                 "today":{"requests":{"2xx":2}}}]})");
  const UsageBook book = UsageBook::from_state(state);
  EXPECT_EQ(book.entries().begin()->second.today.requests[0], 0u);
  EXPECT_EQ(book.entries().begin()->second.totals.requests[0], 2u);
}

TEST(UsageBook, FromStateOfAnythingElseIsEmpty) {
  for (const json& state : {json(nullptr), json(42), json("x"), json::array({1, 2}), json::object(),
                            json{{"entries", "x"}}, json{{"entries", json::object()}}}) {
    EXPECT_TRUE(UsageBook::from_state(state).entries().empty()) << state.dump();
  }
}

// ---- UsageScanner: the last usage object of an answer fed piece by piece ----

TEST(UsageScanner, FindsTheUsageOfAJsonAnswerWhereverItIsSplit) {
  const std::string body =
      R"({"id":"chatcmpl-1","choices":[{"message":{"role":"assistant","content":"say \"usage\": {no}"}}],)"
      R"("usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}})";
  for (std::size_t cut = 0; cut <= body.size(); ++cut) {
    UsageScanner scanner;
    scanner.feed(std::string_view(body).substr(0, cut));
    scanner.feed(std::string_view(body).substr(cut));
    ASSERT_EQ(scanner.result(), (TokenUsage{12, 30, 42})) << "cut at " << cut;
  }
}

TEST(UsageScanner, TakesTheLastChunkOfAStreamThatCarriesUsage) {
  UsageScanner scanner;
  scanner.feed("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n");
  EXPECT_EQ(scanner.result(), std::nullopt);
  scanner.feed("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],");
  scanner.feed("\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n");
  EXPECT_EQ(scanner.result(), (TokenUsage{3, 4, 7}));
  // Fed one byte at a time, the same.
  UsageScanner bytewise;
  const std::string stream = "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
  for (char c : stream) bytewise.feed(std::string_view(&c, 1));
  EXPECT_EQ(bytewise.result(), (TokenUsage{1, 2, 3}));
}

TEST(UsageScanner, NothingForAnswersWithoutUsageOrWithAnOversizedOne) {
  UsageScanner none;
  none.feed(R"({"choices":[]})");
  EXPECT_EQ(none.result(), std::nullopt);
  UsageScanner huge;
  huge.feed("{\"usage\":{\"prompt_tokens\":1,\"pad\":\"" + std::string(UsageScanner::kMaxObject, 'x') + "\"}}");
  EXPECT_EQ(huge.result(), std::nullopt);
  huge.reset();
  huge.feed(R"({"usage":{"prompt_tokens":5,"completion_tokens":5}})");
  EXPECT_EQ(huge.result(), (TokenUsage{5, 5, 10}));
}

TEST(UsageScanner, ReadsCountsAsUsageFromAnswerDoes) {
  for (const char* object :
       {R"({"prompt_tokens":1,"completion_tokens":2,"total_tokens":3})",
        R"({"prompt_tokens": 7.9, "completion_tokens": 2})",
        R"({"prompt_tokens":-1,"completion_tokens":"2","total_tokens":null})",
        R"({"prompt_tokens_details":{"cached_tokens":4},"prompt_tokens":5,"completion_tokens":1e2})",
        R"({"completion_tokens":18446744073709551615,"prompt_tokens":1})", R"({"other":1})", R"({})"}) {
    EXPECT_EQ(usage_from_object_text(object), usage_from_answer(std::string(R"({"usage":)") + object + "}")) << object;
  }
}
