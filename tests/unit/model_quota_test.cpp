// Quotas per account and model: a quota signal or a 429 for a model cools that
// model of that child only; a child whose every model cools is `cooling`; a
// request whose every candidate is cooling waits for the first one back if it
// is back within the queue timeout, else it is told when (Verdict::cooling).
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/model_cooldowns.hpp"
#include "coordinator/readiness.hpp"
#include "coordinator/usage.hpp"
#include "fleet_fixture.hpp"

using namespace coordinator;
using namespace coordinator::testing;
using std::chrono::seconds;
using Verdict = Dispatcher::Verdict;

TEST(ModelCooldowns, ComparedByModelKeyAndExtendedOnlyForward) {
  ModelCooldowns cooldowns;
  const auto t = kNow;
  cooldowns.add("models/gemini-pro", t + seconds(60), CoolingCause::quota, "530");
  ASSERT_NE(cooldowns.find("gemini-pro", t), nullptr);
  EXPECT_EQ(cooldowns.find("models/gemini-pro", t)->until, t + seconds(60));
  EXPECT_EQ(cooldowns.find("gemini-flash", t), nullptr);
  EXPECT_EQ(cooldowns.find("", t), nullptr);  // a request naming no model is not a model's
  // A shorter signal does not shorten it; a longer one lengthens it.
  cooldowns.add("gemini-pro", t + seconds(10), CoolingCause::rate_limited, "429");
  EXPECT_EQ(cooldowns.find("gemini-pro", t)->until, t + seconds(60));
  cooldowns.add("gemini-pro", t + seconds(90), CoolingCause::quota, "530 again");
  EXPECT_EQ(cooldowns.find("gemini-pro", t)->until, t + seconds(90));
  EXPECT_EQ(cooldowns.entries().size(), 1u);
  // Ended: not found, then dropped.
  EXPECT_EQ(cooldowns.find("gemini-pro", t + seconds(90)), nullptr);
  EXPECT_EQ(cooldowns.drop_ended(t + seconds(90)), 1u);
  EXPECT_TRUE(cooldowns.empty());
}

TEST(ModelCooldowns, CoversEveryListedModelOnlyWhenEachCools) {
  ModelCooldowns cooldowns;
  const ModelSet models = listing({"a", "b"});
  EXPECT_FALSE(cooldowns.covers_every(models, kNow));
  cooldowns.add("a", kNow + seconds(30), CoolingCause::quota, "");
  EXPECT_FALSE(cooldowns.covers_every(models, kNow));
  cooldowns.add("b", kNow + seconds(20), CoolingCause::quota, "");
  EXPECT_TRUE(cooldowns.covers_every(models, kNow));
  EXPECT_EQ(cooldowns.first_end_of(models), kNow + seconds(20));
  EXPECT_FALSE(cooldowns.covers_every(models, kNow + seconds(20)));
  // An unknown list (the child takes any model) is never covered.
  EXPECT_FALSE(cooldowns.covers_every(ModelSet{}, kNow));
}

TEST(ModelQuota, AQuotaSignalCoolsOneModelOfOneChild) {
  Fleet fleet(2, Balance::least_busy);
  fleet.registry.report_models(0, listing({"a", "b"}));
  fleet.registry.report_models(1, listing({"a", "b"}));
  fleet.registry.report_model_limited(0, "a", kNow + seconds(60), CoolingCause::quota, "530", kNow);
  EXPECT_EQ(fleet.registry.at(0).state, ChildState::ready);
  // a goes to child 1 only; b still goes to child 0 in turn.
  for (int i = 0; i < 3; ++i) {
    const auto choice = fleet.dispatcher.acquire(kNoneTried, "a");
    ASSERT_EQ(choice.verdict, Verdict::granted);
    EXPECT_EQ(choice.child, 1u);
    fleet.dispatcher.release(choice.child, true);
  }
  const auto for_b = fleet.dispatcher.acquire(kNoneTried, "b");
  ASSERT_EQ(for_b.verdict, Verdict::granted);
  EXPECT_EQ(for_b.child, 0u);
  EXPECT_EQ(fleet.registry.cooling_for(0, "a", kNow), kNow + seconds(60));
  EXPECT_EQ(fleet.registry.cooling_for(0, "b", kNow), std::nullopt);
  EXPECT_EQ(fleet.registry.at(0).quota_cooldowns, 1u);
}

TEST(ModelQuota, AChildWhoseEveryModelCoolsIsCoolingUntilTheFirstIsBack) {
  Fleet fleet(1, Balance::least_busy);
  std::vector<Clock::time_point> deadlines;
  fleet.registry.set_cooling_listener([&](std::size_t, Clock::time_point until) { deadlines.push_back(until); });
  fleet.registry.report_models(0, listing({"a", "b"}));
  fleet.registry.report_model_limited(0, "a", kNow + seconds(60), CoolingCause::quota, "530", kNow);
  fleet.registry.report_model_limited(0, "b", kNow + seconds(30), CoolingCause::rate_limited, "429", kNow);
  const Child& child = fleet.registry.at(0);
  EXPECT_EQ(child.state, ChildState::cooling);
  EXPECT_EQ(child.cooling_until, kNow + seconds(30));
  ASSERT_FALSE(deadlines.empty());
  EXPECT_EQ(deadlines.back(), kNow + seconds(30));  // the control plane's timer is told the first end
  // The timer fires: b is back, so is the child; a still cools.
  fleet.registry.end_cooldowns(0, kNow + seconds(30));
  EXPECT_EQ(child.state, ChildState::ready);
  EXPECT_EQ(fleet.registry.cooling_for(0, "b", kNow + seconds(30)), std::nullopt);
  EXPECT_EQ(fleet.registry.cooling_for(0, "a", kNow + seconds(30)), kNow + seconds(60));
  EXPECT_EQ(deadlines.back(), kNow + seconds(60));
}

TEST(ModelQuota, ListLearnedAfterTheSignalsStillMakesTheChildCooling) {
  Fleet fleet(1, Balance::least_busy);
  fleet.registry.report_model_limited(0, "a", kNow + seconds(60), CoolingCause::quota, "530", kNow);
  EXPECT_EQ(fleet.registry.at(0).state, ChildState::ready);  // its list unknown: it may serve others
  fleet.registry.report_models(0, listing({"a"}));
  EXPECT_EQ(fleet.registry.at(0).state, ChildState::cooling);
}

TEST(ModelQuota, EveryCandidateCoolingWaitsForTheFirstBackWithinTheQueueTimeout) {
  Fleet fleet(3, Balance::least_busy);
  for (std::size_t i = 0; i < 3; ++i) fleet.registry.report_models(i, listing({"a", "b"}));
  fleet.registry.report_model_limited(0, "a", kNow + seconds(50), CoolingCause::quota, "530", kNow);
  fleet.registry.report_model_limited(1, "a", kNow + seconds(20), CoolingCause::quota, "530", kNow);
  fleet.registry.report_model_limited(2, "a", kNow + seconds(40), CoolingCause::quota, "530", kNow);
  ASSERT_EQ(fleet.dispatcher.acquire(kNoneTried, "a").verdict, Verdict::wait);
  std::vector<int> woken;
  TestWaiter waiter(&woken, 1);
  waiter.waiter.model = "a";
  ASSERT_TRUE(fleet.dispatcher.enqueue(&waiter.waiter));
  EXPECT_TRUE(woken.empty());
  // Child 1's cooldown ends first: the waiter goes there.
  fleet.registry.end_cooldowns(1, kNow + seconds(20));
  EXPECT_EQ(woken, (std::vector<int>{1}));
  EXPECT_EQ(waiter.waiter.granted, std::optional<std::size_t>{1});
}

TEST(ModelQuota, EveryCandidateCoolingPastTheQueueTimeoutIsToldWhenTheFirstIsBack) {
  Fleet fleet(2, Balance::least_busy, 1000, 1, true, seconds(10));
  for (std::size_t i = 0; i < 2; ++i) fleet.registry.report_models(i, listing({"a", "b"}));
  fleet.registry.report_model_limited(0, "a", kNow + seconds(900), CoolingCause::quota, "530", kNow);
  fleet.registry.report_model_limited(1, "a", kNow + seconds(600), CoolingCause::quota, "530", kNow);
  const auto choice = fleet.dispatcher.acquire(kNoneTried, "a");
  EXPECT_EQ(choice.verdict, Verdict::cooling);
  EXPECT_EQ(choice.cooling_until, kNow + seconds(600));
  // The tried child does not count: the other one's end is the answer.
  const auto without_1 = fleet.dispatcher.acquire({false, true}, "a");
  EXPECT_EQ(without_1.cooling_until, kNow + seconds(900));
  // Another model is unaffected.
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried, "b").verdict, Verdict::granted);
}

TEST(ModelQuota, AWholeChildQuotaCooldownCountsForEveryModel) {
  Fleet fleet(1, Balance::least_busy, 1000, 1, true, seconds(10));
  fleet.registry.report_quota_exhausted(0, kNow + seconds(120), "530", kNow);
  EXPECT_EQ(fleet.registry.cooling_for(0, "a", kNow), kNow + seconds(120));
  EXPECT_EQ(fleet.registry.cooling_for(0, "", kNow), kNow + seconds(120));
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried, "a").verdict, Verdict::cooling);
}

TEST(ModelQuota, CooldownsRestWithTheirProfileWhileAnotherHoldsTheSlot) {
  Fleet fleet(1, Balance::least_busy);
  fleet.registry.report_model_limited(0, "a", kNow + seconds(60), CoolingCause::quota, "530", kNow);
  fleet.registry.assign_profile(0, "other", "/p/other.json");
  EXPECT_TRUE(fleet.registry.at(0).model_cooldowns.empty());
  fleet.registry.assign_profile(0, "c0", "/p/c0.json");
  ASSERT_NE(fleet.registry.at(0).model_cooldowns.find("a", kNow), nullptr);
}

TEST(ModelQuota, RestoredCooldownsApplyToTheirProfileAndSkipEndedOnes) {
  Fleet fleet(1, Balance::least_busy);
  fleet.registry.report_models(0, listing({"a"}));
  std::vector<ModelCooldown> saved{{"a", kNow + seconds(30), CoolingCause::quota, "530"},
                                   {"b", kNow - seconds(1), CoolingCause::quota, "ended"}};
  fleet.registry.restore_cooldowns("c0", saved, kNow);
  EXPECT_EQ(fleet.registry.at(0).model_cooldowns.entries().size(), 1u);
  EXPECT_EQ(fleet.registry.at(0).state, ChildState::cooling);  // its only model cools
  // A profile that holds no slot yet gets them when it takes one.
  fleet.registry.restore_cooldowns("later", {{"a", kNow + seconds(30), CoolingCause::quota, "530"}}, kNow);
  fleet.registry.assign_profile(0, "later", "/p/later.json");
  EXPECT_NE(fleet.registry.at(0).model_cooldowns.find("a", kNow), nullptr);
}

TEST(ModelQuota, ReadyShowsEachCoolingModelAndTodaysUsage) {
  Fleet fleet(1, Balance::least_busy);
  fleet.registry.report_model_limited(0, "models/a", kNow + seconds(90), CoolingCause::quota, "out of quota (530)",
                                      kNow);
  UsageBook usage;
  const auto wall = std::chrono::system_clock::now();
  usage.record_request("c0", "none", 200, wall);
  usage.record_tokens("c0", "none", TokenUsage{3, 4, 7}, wall);
  const auto body = nlohmann::json::parse(readiness_body(fleet.registry, kNow, {}, &usage));
  const auto& child = body["children"][0];
  ASSERT_EQ(child["cooling_models"].size(), 1u) << child;
  EXPECT_EQ(child["cooling_models"][0]["model"], "a");
  EXPECT_EQ(child["cooling_models"][0]["cause"], "quota");
  EXPECT_EQ(child["cooling_models"][0]["reason"], "out of quota (530)");
  EXPECT_NEAR(child["cooling_models"][0]["seconds_left"].get<double>(), 90, 0.5);
  EXPECT_EQ(child["today"]["requests"], 1);
  EXPECT_EQ(child["today"]["tokens"], 7);
  EXPECT_FALSE(child.contains("cooling_until"));  // its other models are served
}
