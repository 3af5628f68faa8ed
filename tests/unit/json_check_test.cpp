#include <gtest/gtest.h>

#include "coordinator/json_check.hpp"

using namespace coordinator;

TEST(JsonCheck, AcceptsAChatRequest) {
  const auto check = check_json(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_TRUE(check.valid);
  EXPECT_TRUE(check.is_object);
  EXPECT_FALSE(check.stream_requested);
}

TEST(JsonCheck, SeesTopLevelStreamTrueOnly) {
  EXPECT_TRUE(check_json(R"({"stream":true,"messages":[]})").stream_requested);
  EXPECT_FALSE(check_json(R"({"stream":false})").stream_requested);
  EXPECT_FALSE(check_json(R"({"stream":"true"})").stream_requested);
  EXPECT_FALSE(check_json(R"({"options":{"stream":true}})").stream_requested);
  EXPECT_FALSE(check_json(R"({"messages":[{"stream":true}]})").stream_requested);
  EXPECT_TRUE(check_json(R"({"a":{"b":1},"stream":true})").stream_requested);
}

TEST(JsonCheck, RejectsMalformedInput) {
  for (const char* text : {"", "{", "{\"a\":}", "{'a':1}", "[1,2", "{\"a\":1}x", "nul"}) {
    const auto check = check_json(text);
    EXPECT_FALSE(check.valid) << text;
    EXPECT_FALSE(check.error.empty());
  }
}

TEST(JsonCheck, NonObjectIsValidButNotAnObject) {
  const auto check = check_json("[1,2,3]");
  EXPECT_TRUE(check.valid);
  EXPECT_FALSE(check.is_object);
}

TEST(JsonCheck, DeepNestingIsRefusedWithoutRecursion) {
  const std::string deep(1'000'000, '[');
  const auto check = check_json(deep);
  EXPECT_FALSE(check.valid);
  EXPECT_NE(check.error.find("deeper"), std::string::npos);
  EXPECT_TRUE(check_json(std::string(100, '[') + std::string(100, ']')).valid);
}

TEST(JsonCheck, HugeNumbersAreRefusedNotCrashedOn) {
  // A million digits overflow a double: refused (a 400 upstream of this), never a crash.
  const std::string big = "{\"n\":" + std::string(1'000'000, '9') + "}";
  EXPECT_FALSE(check_json(big).valid);
  EXPECT_TRUE(check_json("{\"n\":123456789012345678901234567890}").valid);
}

TEST(JsonCheck, LaterDuplicateStreamKeyWins) {
  // Found by fuzz_profile_json: the child's parser keeps the last duplicate.
  EXPECT_FALSE(check_json(R"({"stream":true,"stream":{"a":1}})").stream_requested);
  EXPECT_FALSE(check_json(R"({"stream":true,"stream":[1]})").stream_requested);
  EXPECT_TRUE(check_json(R"({"stream":{"a":1},"stream":true})").stream_requested);
}

namespace {

// The top-level model as the router reads it.
std::string model_of(std::string_view text) {
  const auto check = check_json(text);
  std::string storage;
  return std::string(model_text(check, storage));
}

}  // namespace

TEST(JsonCheck, ReportsTheTopLevelModelAsAViewIntoTheBody) {
  const std::string body = R"({"model":"gemini-2.5-pro","messages":[]})";
  const auto check = check_json(body);
  EXPECT_TRUE(check.has_model);
  EXPECT_FALSE(check.model_escaped);
  EXPECT_EQ(check.model, "gemini-2.5-pro");
  // No copy: the view points into the checked text.
  EXPECT_GE(check.model.data(), body.data());
  EXPECT_LE(check.model.data() + check.model.size(), body.data() + body.size());
  std::string storage;
  EXPECT_EQ(model_text(check, storage).data(), check.model.data());
  EXPECT_TRUE(storage.empty());
}

TEST(JsonCheck, ModelValuesWithEscapesAreDecoded) {
  EXPECT_EQ(model_of(R"({"model":"models\/gemini"})"), "models/gemini");
  EXPECT_EQ(model_of(R"({"model":"a\"b\\c"})"), "a\"b\\c");
  EXPECT_EQ(model_of(R"({"model":"\u0067emini"})"), "gemini");
  EXPECT_EQ(model_of(R"({"model":"caf\u00e9"})"), "caf\xc3\xa9");
  EXPECT_EQ(model_of(R"({"model":"\ud83d\ude00"})"), "\xf0\x9f\x98\x80");
  EXPECT_EQ(model_of(R"({"model":"t\tn\nr\rb\bf\f"})"), "t\tn\nr\rb\bf\f");
  const auto check = check_json(R"({"model":"models\/gemini"})");
  EXPECT_TRUE(check.model_escaped);
  EXPECT_EQ(check.model, R"(models\/gemini)");  // as written
  // The key itself may be written with escapes too.
  EXPECT_EQ(model_of(R"({"m\u006fdel":"x"})"), "x");
  EXPECT_EQ(model_of("{\"model\":\"gr\xc3\xbc\xc3\x9f\"}"), "gr\xc3\xbc\xc3\x9f");
}

TEST(JsonCheck, OnlyAStringAtTheTopLevelIsTheModel) {
  EXPECT_FALSE(check_json(R"({"options":{"model":"x"}})").has_model);
  EXPECT_FALSE(check_json(R"({"messages":[{"model":"x"}]})").has_model);
  EXPECT_FALSE(check_json(R"(["model","x"])").has_model);
  EXPECT_FALSE(check_json(R"({"model":null})").has_model);
  EXPECT_FALSE(check_json(R"({"model":5})").has_model);
  EXPECT_FALSE(check_json(R"({"model":{"id":"x"}})").has_model);
  EXPECT_FALSE(check_json(R"({"model":["x"]})").has_model);
  EXPECT_FALSE(check_json(R"({"models":"x","mode":"y","modelx":"z"})").has_model);
  EXPECT_FALSE(check_json(R"({"a":"model","b":"x"})").has_model);  // "model" as a value is no key
  EXPECT_EQ(model_of(R"({"options":{"model":"inner"},"model":"outer"})"), "outer");
  EXPECT_EQ(model_of(R"({"model":""})"), "");
  EXPECT_TRUE(check_json(R"({"model":""})").has_model);
  // Not valid: nothing is reported.
  EXPECT_FALSE(check_json(R"({"model":"x",)").has_model);
}

TEST(JsonCheck, LaterDuplicateModelKeyWins) {
  // As in the child, whose parser (Python's json) keeps the last duplicate.
  EXPECT_EQ(model_of(R"({"model":"a","model":"b"})"), "b");
  EXPECT_FALSE(check_json(R"({"model":"a","model":null})").has_model);
  EXPECT_FALSE(check_json(R"({"model":"a","model":{"x":1}})").has_model);
  EXPECT_EQ(model_of(R"({"model":[1],"model":"c"})"), "c");
}

TEST(JsonCheck, StreamAndModelTogether) {
  const auto check = check_json(R"({"stream":true,"model":"m","messages":[{"role":"user","content":"x"}]})");
  EXPECT_TRUE(check.stream_requested);
  EXPECT_EQ(check.model, "m");
  EXPECT_FALSE(check_json(R"({"model":true})").stream_requested);
}
