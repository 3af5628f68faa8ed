#include "coordinator/profile_facts.hpp"

#include <gtest/gtest.h>

using namespace coordinator;

TEST(ProfileFacts, CountsCookiesAndFindsTheEarliestExpiry) {
  const auto facts = profile_facts(R"({"cookies":[
      {"name":"SID","value":"secret-1","expires":1800000000.5},
      {"name":"HSID","value":"secret-2","expires":1790000000},
      {"name":"session","value":"secret-3","expires":-1},
      {"name":"odd","value":"x","expires":"tomorrow"}],
    "origins":[]})");
  ASSERT_TRUE(facts.valid) << facts.problem;
  EXPECT_EQ(facts.cookies, 4u);
  ASSERT_TRUE(facts.earliest_expiry);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(facts.earliest_expiry->time_since_epoch()).count(),
            1790000000);
}

TEST(ProfileFacts, RefusesWhatIsNoStorageState) {
  EXPECT_EQ(profile_facts("{").problem, "not JSON");
  EXPECT_EQ(profile_facts("[]").problem, "not a JSON object");
  EXPECT_EQ(profile_facts(R"({"cookies":{}})").problem, "no \"cookies\" array");
  const auto only_session = profile_facts(R"({"cookies":[{"name":"a","value":"b","expires":-1}]})");
  EXPECT_TRUE(only_session.valid);
  EXPECT_FALSE(only_session.earliest_expiry);
}
