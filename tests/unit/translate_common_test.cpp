#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/translate/common.hpp"

namespace coordinator::translate {
namespace {

using nlohmann::json;
using Kind = StreamPiece::Kind;

std::vector<Kind> kinds_of(const std::vector<StreamPiece>& pieces) {
  std::vector<Kind> kinds;
  for (const auto& piece : pieces) kinds.push_back(piece.kind);
  return kinds;
}

TEST(TranslateCommon, ChatMessagesMergeSystemTextsAndJoinToolCallsToTheirTurn) {
  ChatMessages messages;
  messages.add_system("first");
  messages.add_user("question");
  messages.add_system("");  // nothing to add
  messages.add_system("second");
  messages.add_assistant_text("Let me look.");
  messages.add_assistant_tool_call("call_1", "lookup", "{}");
  messages.add_assistant_tool_call("call_2", "lookup", "{\"q\":1}");
  messages.add_tool_result("call_1", "one");
  messages.add_assistant_tool_call("call_3", "lookup", "{}");
  EXPECT_TRUE(messages.has_conversation());
  EXPECT_EQ(messages.take(), json::parse(R"([
    {"role": "system", "content": "first\n\nsecond"},
    {"role": "user", "content": "question"},
    {"role": "assistant", "content": "Let me look.", "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
      {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "one"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_3", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}])"));
  ChatMessages system_only;
  system_only.add_system("x");
  EXPECT_FALSE(system_only.has_conversation());
}

TEST(TranslateCommon, ModelAliasesApplyByExactName) {
  const ModelAliases aliases = {{"claude-sonnet-4-5", "gemini-2.5-pro"}};
  Options options;
  EXPECT_EQ(resolve_model("claude-sonnet-4-5", options), "claude-sonnet-4-5");
  options.model_aliases = &aliases;
  EXPECT_EQ(resolve_model("claude-sonnet-4-5", options), "gemini-2.5-pro");
  EXPECT_EQ(resolve_model("claude-sonnet-4", options), "claude-sonnet-4");
}

TEST(TranslateCommon, TokenEstimateMatchesTheChildsFormula) {
  EXPECT_EQ(estimate_tokens(""), 0);
  EXPECT_EQ(estimate_tokens("hi"), 1);                   // at least one
  EXPECT_EQ(estimate_tokens(std::string(40, 'a')), 10);  // 4 characters a token
  EXPECT_EQ(estimate_tokens("你好世界你好"), 4);         // 6 CJK characters / 1.5
  EXPECT_EQ(estimate_tokens("\xff\xfe\xfd\xfc"), 1);     // stray bytes count as characters, never throw
}

TEST(TranslateCommon, ChatAnswerIsReadWithoutExceptions) {
  const auto answer = read_chat_answer(json::parse(R"({"choices": [{"index": 0, "finish_reason": "stop",
      "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 4}})"));
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer.value().text, "ab");
  EXPECT_EQ(answer.value().finish_reason, "stop");
  ASSERT_TRUE(answer.value().usage.has_value());
  EXPECT_EQ(answer.value().usage->total_tokens, 7);  // summed when absent
  for (const char* bad : {R"("text")", R"({"choices": "x"})", R"({"choices": [{"message": 1}]})",
                          R"({"error": {"message": "quota"}})", R"({"choices": [{"message": {"tool_calls": [1]}}]})"}) {
    const auto read = read_chat_answer(json::parse(bad));
    ASSERT_FALSE(read.ok()) << bad;
    EXPECT_EQ(read.error().status, 502);
  }
}

TEST(TranslateCommon, ArgumentsObjectKeepsWhatIsNoObject) {
  EXPECT_EQ(arguments_object("{\"a\": 1}"), json::parse(R"({"a": 1})"));
  EXPECT_EQ(arguments_object(""), json::object());
  EXPECT_EQ(arguments_object("{\"a\": "), json::parse(R"({"arguments": "{\"a\": "})"));
  EXPECT_EQ(arguments_object("[1]"), json::parse(R"({"arguments": "[1]"})"));
}

TEST(TranslateCommon, OpenAIStyleToolCallFragmentsFoldByIndex) {
  // OpenAI's own shape: id and name on the first fragment only; usage in a chunk with no choices.
  ChatStreamReader reader;
  auto pieces = reader.read(json::parse(R"({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null,
      "tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                      "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]})"));
  EXPECT_EQ(kinds_of(pieces), (std::vector<Kind>{Kind::tool_call_started}));
  pieces = reader.read(json::parse(
      R"({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}}]})"));
  EXPECT_EQ(kinds_of(pieces), (std::vector<Kind>{Kind::tool_call_arguments}));
  pieces = reader.read(json::parse(R"({"choices": [{"index": 0, "delta": {"tool_calls": [
      {"index": 0, "function": {"arguments": "\"Paris\"}"}},
      {"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": "{}"}}]}}]})"));
  EXPECT_EQ(kinds_of(pieces),
            (std::vector<Kind>{Kind::tool_call_arguments, Kind::tool_call_started, Kind::tool_call_arguments}));
  EXPECT_EQ(pieces[1].call, 1u);
  reader.read(json::parse(R"({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})"));
  reader.read(
      json::parse(R"({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})"));
  ASSERT_EQ(reader.tool_calls().size(), 2u);
  EXPECT_EQ(reader.tool_calls()[0].id, "call_a");
  EXPECT_EQ(reader.tool_calls()[0].name, "get_weather");
  EXPECT_EQ(reader.tool_calls()[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(reader.tool_calls()[1].name, "get_time");
  EXPECT_EQ(reader.finish_reason(), "tool_calls");
  ASSERT_TRUE(reader.usage().has_value());
  EXPECT_EQ(reader.usage()->total_tokens, 11);
}

TEST(TranslateCommon, ToolCallsWithoutIndexFoldById) {
  ChatStreamReader reader;
  reader.read(json::parse(R"({"choices": [{"delta": {"tool_calls": [{"id": "c1", "function": {"name": "f"}}]}}]})"));
  reader.read(
      json::parse(R"({"choices": [{"delta": {"tool_calls": [{"id": "c1", "function": {"arguments": "{}"}}]}}]})"));
  reader.read(json::parse(R"({"choices": [{"delta": {"tool_calls": [{"id": "c2", "function": {"name": "g"}}]}}]})"));
  ASSERT_EQ(reader.tool_calls().size(), 2u);
  EXPECT_EQ(reader.tool_calls()[0].arguments, "{}");
  EXPECT_EQ(reader.tool_calls()[1].name, "g");
}

TEST(TranslateCommon, OddChunksAddNothingAndNeverThrow) {
  ChatStreamReader reader;
  for (const char* odd : {R"([])", R"("x")", R"({"choices": 3})", R"({"choices": [1, null, {"delta": 5}]})",
                          R"({"choices": [{"delta": {"content": 7, "tool_calls": "x"}}]})",
                          R"({"choices": [{"index": 1, "delta": {"content": "second choice"}}]})",
                          R"({"choices": [{"delta": {"tool_calls": [null, 4]}}]})", R"({"usage": "many"})"}) {
    EXPECT_TRUE(reader.read(json::parse(odd)).empty()) << odd;
  }
  EXPECT_TRUE(reader.tool_calls().empty());
  const auto error = reader.read(json::parse(R"({"error": {"message": "boom", "type": "server_error"}})"));
  ASSERT_EQ(error.size(), 1u);
  EXPECT_EQ(error[0].kind, Kind::error);
  EXPECT_EQ(error[0].text, "boom");
}

TEST(TranslateCommon, FieldsAreTypeCheckedBeforeTheyAreCopied) {
  json chat = json::object();
  const json request =
      json::parse(R"({"n": 1.5, "i": 3, "zero": 0, "neg": -2, "b": true, "s": ["a", "b"], "bad": ["a", 1]})");
  EXPECT_FALSE(copy_field(member(request, "n"), "n", FieldKind::number, chat, "n"));
  EXPECT_FALSE(copy_field(member(request, "i"), "i", FieldKind::positive_integer, chat, "i"));
  EXPECT_TRUE(copy_field(member(request, "zero"), "zero", FieldKind::positive_integer, chat, "zero"));
  EXPECT_TRUE(copy_field(member(request, "neg"), "neg", FieldKind::positive_integer, chat, "neg"));
  EXPECT_TRUE(copy_field(member(request, "n"), "n", FieldKind::positive_integer, chat, "x"));
  EXPECT_FALSE(copy_field(member(request, "b"), "b", FieldKind::boolean, chat, "b"));
  EXPECT_FALSE(copy_field(member(request, "s"), "s", FieldKind::string_list, chat, "stop"));
  EXPECT_TRUE(copy_field(member(request, "bad"), "bad", FieldKind::string_list, chat, "bad"));
  EXPECT_FALSE(copy_field(member(request, "absent"), "absent", FieldKind::number, chat, "absent"));
  EXPECT_EQ(chat, json::parse(R"({"n": 1.5, "i": 3, "b": true, "stop": ["a", "b"]})"));
}

}  // namespace
}  // namespace coordinator::translate
