#include <gtest/gtest.h>

#include "coordinator/health_checker.hpp"

using namespace coordinator;

TEST(Health, OkOnlyFor200WithStatusOk) {
  EXPECT_TRUE(judge_health(200, R"({"status":"OK","details":{"queueLength":0}})").healthy);
  EXPECT_FALSE(judge_health(503, R"({"status":"OK"})").healthy);
  EXPECT_FALSE(judge_health(200, R"({"status":"Error"})").healthy);
  EXPECT_FALSE(judge_health(200, R"({"status":1})").healthy);
  EXPECT_FALSE(judge_health(200, "not json").healthy);
  EXPECT_FALSE(judge_health(200, "[]").healthy);
  EXPECT_FALSE(judge_health(200, "{}").healthy);
}

TEST(Health, ReasonsAreShortAndSayWhy) {
  EXPECT_NE(judge_health(500, "").error.find("500"), std::string::npos);
  EXPECT_NE(judge_health(200, "{}").error.find("status"), std::string::npos);
}
