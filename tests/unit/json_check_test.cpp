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
