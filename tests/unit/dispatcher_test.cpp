#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fleet_fixture.hpp"

using namespace coordinator;
using namespace coordinator::testing;

using Verdict = Dispatcher::Verdict;

TEST(Dispatcher, LeastBusyTakesTheNextChildWithAFreeSlotInTurn) {
  Fleet fleet(3, Balance::least_busy, 1000, 2);
  std::vector<std::size_t> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(fleet.granted());
  EXPECT_EQ(picks, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(fleet.registry.at(i).in_flight, 2u);
    EXPECT_EQ(fleet.registry.at(i).state, ChildState::busy);
  }
}

TEST(Dispatcher, LeastBusySkipsChildrenWithoutAFreeSlot) {
  Fleet fleet(3, Balance::least_busy);
  EXPECT_EQ(fleet.granted(), 0u);
  EXPECT_EQ(fleet.granted(), 1u);
  fleet.dispatcher.release(0, true);
  // Child 2 is next in turn; then child 0 is the only one free.
  EXPECT_EQ(fleet.granted(), 2u);
  EXPECT_EQ(fleet.granted(), 0u);
  EXPECT_EQ(fleet.registry.at(0).served, 1u);
}

TEST(Dispatcher, LeastBusySkipsTriedChildren) {
  Fleet fleet(3, Balance::least_busy);
  EXPECT_EQ(fleet.granted({true, false, true}), 1u);
}

TEST(Dispatcher, WaitWhenEveryServingChildIsBusy) {
  Fleet fleet(2, Balance::least_busy);
  fleet.granted();
  fleet.granted();
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::wait);
  // A busy child that was already tried is no reason to wait.
  EXPECT_EQ(fleet.dispatcher.acquire({true, false}).verdict, Verdict::wait);
  EXPECT_EQ(fleet.dispatcher.acquire({true, true}).verdict, Verdict::none);
}

TEST(Dispatcher, NoneWithoutAServingChild) {
  Fleet fleet(2, Balance::least_busy, 1000, 1, /*ready=*/false);
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::none);
  fleet.registry.report_health(0, false, "down", 0, kNow);
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::none);

  Fleet round_robin(2, Balance::round_robin, 1000, 1, /*ready=*/false);
  EXPECT_EQ(round_robin.dispatcher.acquire(kNoneTried).verdict, Verdict::none);
}

TEST(Dispatcher, NoneWhileEveryChildIsUnhealthyOrEjected) {
  Fleet fleet(3, Balance::least_busy);
  fleet.registry.report_forward_failure(0, "answered 503", kNow);
  const OutlierPolicy eject_at_once{1, std::chrono::seconds(60), std::chrono::seconds(60)};
  ASSERT_TRUE(fleet.registry.report_answer(1, 500, eject_at_once, kNow));
  fleet.registry.report_forward_failure(2, "answered 503", kNow);
  EXPECT_EQ(fleet.registry.at(1).state, ChildState::cooling);
  // An ejection is the child's fault, not its account's: nothing to wait for.
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::none);
}

TEST(Dispatcher, EveryChildRateLimitedWaitsWhenTheFirstEndsWithinTheQueueTimeout) {
  Fleet fleet(2, Balance::least_busy);
  fleet.registry.report_forward_failure(0, "answered 503", kNow);
  fleet.registry.report_rate_limited(1, kNow + std::chrono::seconds(60), kNow);
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::wait);
  Dispatcher impatient(fleet.registry, Balance::least_busy, 1000, std::chrono::seconds(10));
  const auto choice = impatient.acquire(kNoneTried);
  EXPECT_EQ(choice.verdict, Verdict::cooling);
  EXPECT_EQ(choice.cooling_until, kNow + std::chrono::seconds(60));
}

TEST(Dispatcher, EnqueueRespectsMaxQueue) {
  Fleet fleet(1, Balance::least_busy, 2);
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1), b(&woken, 2), c(&woken, 3);
  EXPECT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  EXPECT_TRUE(fleet.dispatcher.enqueue(&b.waiter));
  EXPECT_FALSE(fleet.dispatcher.enqueue(&c.waiter));
  EXPECT_EQ(fleet.dispatcher.queued(), 2u);
  EXPECT_TRUE(woken.empty());
  fleet.dispatcher.remove(&a.waiter);
  EXPECT_TRUE(fleet.dispatcher.enqueue(&c.waiter));
  EXPECT_EQ(fleet.dispatcher.queued(), 2u);
}

TEST(Dispatcher, ZeroMaxQueueRefusesEveryWaiter) {
  Fleet fleet(1, Balance::least_busy, 0);
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1);
  EXPECT_FALSE(fleet.dispatcher.enqueue(&a.waiter));
  EXPECT_EQ(fleet.dispatcher.queued(), 0u);
}

TEST(Dispatcher, WaitersAreGrantedInOrderAsSlotsFree) {
  Fleet fleet(1, Balance::least_busy);
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1), b(&woken, 2), c(&woken, 3);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  ASSERT_TRUE(fleet.dispatcher.enqueue(&b.waiter));
  ASSERT_TRUE(fleet.dispatcher.enqueue(&c.waiter));
  EXPECT_TRUE(woken.empty());

  fleet.dispatcher.release(0, true);
  EXPECT_EQ(woken, (std::vector<int>{1}));
  EXPECT_EQ(a.waiter.granted, std::optional<std::size_t>{0});
  EXPECT_FALSE(b.waiter.granted.has_value());
  EXPECT_EQ(fleet.dispatcher.queued(), 2u);
  // The slot went straight to the waiter: the child is busy again.
  EXPECT_EQ(fleet.registry.at(0).state, ChildState::busy);
  EXPECT_EQ(fleet.registry.at(0).in_flight, 1u);

  fleet.dispatcher.release(0, true);
  EXPECT_EQ(woken, (std::vector<int>{1, 2}));
  EXPECT_EQ(b.waiter.granted, std::optional<std::size_t>{0});
  fleet.dispatcher.release(0, true);
  EXPECT_EQ(woken, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(c.waiter.granted, std::optional<std::size_t>{0});
  EXPECT_EQ(fleet.dispatcher.queued(), 0u);
  EXPECT_FALSE(a.waiter.refused || b.waiter.refused || c.waiter.refused);
  EXPECT_EQ(fleet.registry.at(0).served, 3u);
}

TEST(Dispatcher, AChildBecomingReadyServesTheQueue) {
  Fleet fleet(2, Balance::least_busy);
  fleet.granted();
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  // Child 1 fails and comes back healthy: the waiter gets it.
  fleet.registry.report_forward_failure(1, "answered 503", kNow);
  fleet.dispatcher.release(1, false);
  EXPECT_TRUE(woken.empty());
  make_ready(fleet.registry, 1);
  EXPECT_EQ(woken, (std::vector<int>{1}));
  EXPECT_EQ(a.waiter.granted, std::optional<std::size_t>{1});
}

TEST(Dispatcher, WaiterThatTriedEveryServingChildIsRefused) {
  Fleet fleet(2, Balance::least_busy);
  fleet.granted();
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1, {true, false});  // waits for child 1
  TestWaiter b(&woken, 2);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  ASSERT_TRUE(fleet.dispatcher.enqueue(&b.waiter));
  EXPECT_TRUE(woken.empty());
  // Child 1 leaves service; only child 0, which `a` tried, still serves.
  fleet.registry.report_forward_failure(1, "answered 503", kNow);
  fleet.dispatcher.pump();
  EXPECT_EQ(woken, (std::vector<int>{1}));
  EXPECT_TRUE(a.waiter.refused);
  EXPECT_FALSE(a.waiter.granted.has_value());
  EXPECT_FALSE(b.waiter.refused);
  EXPECT_EQ(fleet.dispatcher.queued(), 1u);
  // `b` still gets child 0 when it frees.
  fleet.dispatcher.release(0, true);
  EXPECT_EQ(woken, (std::vector<int>{1, 2}));
  EXPECT_EQ(b.waiter.granted, std::optional<std::size_t>{0});
}

TEST(Dispatcher, WaiterWithNothingLeftToTryIsRefusedOnEnqueue) {
  Fleet fleet(2, Balance::least_busy);
  fleet.granted();
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1, {true, true});
  EXPECT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  EXPECT_TRUE(a.waiter.refused);
  EXPECT_EQ(woken, (std::vector<int>{1}));
  EXPECT_EQ(fleet.dispatcher.queued(), 0u);
}

TEST(Dispatcher, RemovedWaiterIsNeverGranted) {
  Fleet fleet(1, Balance::least_busy);
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1), b(&woken, 2);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  ASSERT_TRUE(fleet.dispatcher.enqueue(&b.waiter));
  fleet.dispatcher.remove(&a.waiter);
  EXPECT_EQ(fleet.dispatcher.queued(), 1u);
  fleet.dispatcher.remove(&a.waiter);  // twice is harmless
  EXPECT_EQ(fleet.dispatcher.queued(), 1u);
  fleet.dispatcher.release(0, true);
  EXPECT_EQ(woken, (std::vector<int>{2}));
  EXPECT_FALSE(a.waiter.granted.has_value());
  EXPECT_EQ(b.waiter.granted, std::optional<std::size_t>{0});
}

TEST(Dispatcher, RoundRobinHandsOutBusyChildrenAndNeverWaits) {
  Fleet fleet(2, Balance::round_robin);
  std::vector<std::size_t> picks;
  for (int i = 0; i < 5; ++i) picks.push_back(fleet.granted());
  EXPECT_EQ(picks, (std::vector<std::size_t>{0, 1, 0, 1, 0}));
  EXPECT_EQ(fleet.registry.at(0).in_flight, 3u);
  EXPECT_EQ(fleet.registry.at(1).in_flight, 2u);
  EXPECT_EQ(fleet.registry.at(0).state, ChildState::busy);
  EXPECT_EQ(fleet.dispatcher.acquire({true, true}).verdict, Verdict::none);
}

TEST(Dispatcher, RoundRobinSkipsChildrenOutOfService) {
  Fleet fleet(3, Balance::round_robin);
  fleet.registry.report_forward_failure(1, "answered 503", kNow);
  std::vector<std::size_t> picks;
  for (int i = 0; i < 4; ++i) picks.push_back(fleet.granted());
  EXPECT_EQ(picks, (std::vector<std::size_t>{0, 2, 0, 2}));
}

TEST(Dispatcher, PickWithoutSlotTakesNoSlot) {
  Fleet fleet(2, Balance::least_busy);
  EXPECT_EQ(fleet.dispatcher.pick_without_slot(kNoneTried), std::optional<std::size_t>{0});
  EXPECT_EQ(fleet.dispatcher.pick_without_slot(kNoneTried), std::optional<std::size_t>{1});
  EXPECT_EQ(fleet.registry.at(0).in_flight, 0u);
  EXPECT_EQ(fleet.registry.at(1).in_flight, 0u);
  EXPECT_EQ(fleet.registry.at(0).state, ChildState::ready);
  // Busy children still answer work that needs no slot.
  fleet.granted();
  fleet.granted();
  EXPECT_TRUE(fleet.dispatcher.pick_without_slot(kNoneTried).has_value());
  EXPECT_EQ(fleet.dispatcher.pick_without_slot({true, false}), std::optional<std::size_t>{1});
  EXPECT_FALSE(fleet.dispatcher.pick_without_slot({true, true}).has_value());
}

TEST(Dispatcher, PickWithoutSlotFindsNothingWithoutAServingChild) {
  Fleet fleet(2, Balance::least_busy, 1000, 1, /*ready=*/false);
  EXPECT_FALSE(fleet.dispatcher.pick_without_slot(kNoneTried).has_value());
}

TEST(Dispatcher, ChildReportingItsOwnQueueIsSkippedByLeastBusy) {
  Fleet fleet(2, Balance::least_busy);
  fleet.registry.report_health(0, true, "", 3, kNow);
  EXPECT_EQ(fleet.granted(), 1u);
  // Child 0 is serving but has no free slot: wait rather than pile onto it.
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::wait);
  EXPECT_EQ(fleet.registry.at(0).in_flight, 0u);

  std::vector<int> woken;
  TestWaiter a(&woken, 1);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  EXPECT_TRUE(woken.empty());
  // Its queue empties: the waiter gets it.
  fleet.registry.report_health(0, true, "", 0, kNow);
  EXPECT_EQ(woken, (std::vector<int>{1}));
  EXPECT_EQ(a.waiter.granted, std::optional<std::size_t>{0});
}

TEST(Dispatcher, NewRequestDoesNotJumpTheQueue) {
  Fleet fleet(2, Balance::least_busy);
  fleet.granted();
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1, {true, false});  // can only use child 1
  ASSERT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  fleet.dispatcher.release(0, true);
  EXPECT_TRUE(woken.empty());
  EXPECT_TRUE(fleet.registry.has_free_slot(0));
  // Child 0 is free, but a request is already queued: a new one waits too...
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::wait);
  EXPECT_EQ(fleet.registry.at(0).in_flight, 0u);
  // ...and, queued behind it, gets child 0 at once because `a` cannot use it.
  TestWaiter b(&woken, 2);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&b.waiter));
  EXPECT_EQ(woken, (std::vector<int>{2}));
  EXPECT_EQ(b.waiter.granted, std::optional<std::size_t>{0});
  EXPECT_EQ(fleet.dispatcher.queued(), 1u);
}

TEST(Dispatcher, QueuedRequestIsServedBeforeALaterOne) {
  Fleet fleet(1, Balance::least_busy);
  fleet.granted();
  std::vector<int> woken;
  TestWaiter a(&woken, 1);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&a.waiter));
  fleet.dispatcher.release(0, true);
  EXPECT_EQ(a.waiter.granted, std::optional<std::size_t>{0});
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried).verdict, Verdict::wait);
}

// ---- Models: a request naming a model goes only to children that may serve it ----

TEST(DispatcherModels, OnlyChildrenListingTheModelAreChosen) {
  Fleet fleet(3, Balance::least_busy, 1000, 2);
  fleet.registry.report_models(0, listing({"a"}));
  fleet.registry.report_models(1, listing({"a", "b"}));
  fleet.registry.report_models(2, listing({"c"}));
  std::vector<std::size_t> picks;
  for (int i = 0; i < 4; ++i) {
    const auto choice = fleet.dispatcher.acquire(kNoneTried, "b");
    ASSERT_NE(choice.verdict, Verdict::none);
    if (choice.verdict == Verdict::granted) picks.push_back(choice.child);
  }
  // Child 1 alone lists b; its two slots taken, the next request for b waits for it.
  EXPECT_EQ(picks, (std::vector<std::size_t>{1, 1}));
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried, "b").verdict, Verdict::wait);
  // Compared as the real child compares: with or without the models/ prefix.
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried, "models/c").child, 2u);
  // A request without a model still goes to any child.
  EXPECT_EQ(fleet.granted(), 0u);
}

TEST(DispatcherModels, NoChildForAModelNobodyLists) {
  Fleet fleet(2, Balance::least_busy);
  fleet.registry.report_models(0, listing({"a"}));
  fleet.registry.report_models(1, listing({"b"}));
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried, "zzz").verdict, Verdict::none);
  EXPECT_TRUE(fleet.registry.no_serving_child_has("zzz"));
  EXPECT_FALSE(fleet.registry.no_serving_child_has("models/b"));

  Fleet round_robin(2, Balance::round_robin);
  round_robin.registry.report_models(0, listing({"a"}));
  round_robin.registry.report_models(1, listing({"b"}));
  EXPECT_EQ(round_robin.dispatcher.acquire(kNoneTried, "zzz").verdict, Verdict::none);
  EXPECT_EQ(round_robin.dispatcher.acquire(kNoneTried, "b").child, 1u);
  EXPECT_EQ(round_robin.dispatcher.acquire(kNoneTried, "b").child, 1u);
}

TEST(DispatcherModels, AChildWhoseModelsAreUnknownTakesAnyModel) {
  // Its list not read yet (or it has none): the real child then checks the model itself.
  Fleet fleet(2, Balance::least_busy);
  fleet.registry.report_models(0, listing({"a"}));
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried, "zzz").child, 1u);
  EXPECT_FALSE(fleet.registry.no_serving_child_has("zzz"));
  // An unknown set reported later does not replace a known one.
  fleet.registry.report_models(0, ModelSet{});
  EXPECT_TRUE(fleet.registry.at(0).models.known);
}

TEST(DispatcherModels, NoServingChildIsNotAMissingModel) {
  // Nothing serves: that is no_healthy_children (503), not a 404.
  Fleet fleet(2, Balance::least_busy, 1000, 1, /*ready=*/false);
  fleet.registry.report_models(0, listing({"a"}));
  EXPECT_FALSE(fleet.registry.no_serving_child_has("zzz"));
  EXPECT_EQ(fleet.dispatcher.acquire(kNoneTried, "a").verdict, Verdict::none);
}

TEST(DispatcherModels, AWaiterGetsTheFirstFreeChildThatListsItsModel) {
  Fleet fleet(2, Balance::least_busy);
  fleet.registry.report_models(0, listing({"a"}));
  fleet.registry.report_models(1, listing({"b"}));
  fleet.granted();
  fleet.granted();
  std::vector<int> woken;
  TestWaiter for_b(&woken, 1);
  for_b.waiter.model = "b";
  TestWaiter any(&woken, 2);
  ASSERT_TRUE(fleet.dispatcher.enqueue(&for_b.waiter));
  ASSERT_TRUE(fleet.dispatcher.enqueue(&any.waiter));
  // Child 0 frees: the waiter for b cannot use it, the one behind it can.
  fleet.dispatcher.release(0, true);
  EXPECT_EQ(woken, (std::vector<int>{2}));
  EXPECT_EQ(any.waiter.granted, std::optional<std::size_t>{0});
  fleet.dispatcher.release(1, true);
  EXPECT_EQ(woken, (std::vector<int>{2, 1}));
  EXPECT_EQ(for_b.waiter.granted, std::optional<std::size_t>{1});
}

TEST(DispatcherModels, AWaiterIsRefusedWhenItsOnlyCandidateLearnsItLacksTheModel) {
  Fleet fleet(1, Balance::least_busy);
  fleet.granted();  // child 0 busy, its models unknown
  std::vector<int> woken;
  TestWaiter waiter(&woken, 1);
  waiter.waiter.model = "zzz";
  ASSERT_TRUE(fleet.dispatcher.enqueue(&waiter.waiter));
  EXPECT_TRUE(woken.empty());
  // Its list arrives without zzz: waiting would be in vain.
  fleet.registry.report_models(0, listing({"a"}));
  EXPECT_EQ(woken, (std::vector<int>{1}));
  EXPECT_TRUE(waiter.waiter.refused);
  EXPECT_TRUE(fleet.registry.no_serving_child_has("zzz"));
}

TEST(DispatcherModels, ServingListenerFiresWhenAChildStartsServing) {
  Fleet fleet(2, Balance::least_busy, 1000, 1, /*ready=*/false);
  std::vector<std::size_t> serving;
  fleet.registry.set_serving_listener([&](std::size_t index) { serving.push_back(index); });
  make_ready(fleet.registry, 1);
  make_ready(fleet.registry, 1);  // already serving: no second call
  fleet.granted();                // ready -> busy is no new start either
  fleet.registry.report_forward_failure(1, "answered 503", kNow);
  fleet.dispatcher.release(1, false);
  make_ready(fleet.registry, 1);
  EXPECT_EQ(serving, (std::vector<std::size_t>{1, 1}));
}

TEST(DispatcherModels, UnionComesFromServingChildrenOnly) {
  Fleet fleet(3, Balance::least_busy);
  fleet.registry.report_models(0, listing({"a"}));
  fleet.registry.report_models(1, listing({"b"}));
  fleet.registry.report_forward_failure(1, "answered 503", kNow);
  const auto sets = fleet.registry.serving_model_sets();
  EXPECT_EQ(model_ids(sets), (std::vector<std::string>{"a"}));
  // A new profile in a slot forgets the old account's list.
  fleet.registry.assign_profile(0, "other", "/p/other.json");
  EXPECT_FALSE(fleet.registry.at(0).models.known);
}

// ---- Fair sharing: queued requests take turns by API key, FIFO within one key ----

TEST(DispatcherFairShare, KeysTakeTurnsAndEachKeyIsServedInOrder) {
  Fleet fleet(1, Balance::least_busy);
  fleet.granted();  // the only child is busy
  std::vector<int> woken;
  TestWaiter a1(&woken, 11), a2(&woken, 12), a3(&woken, 13), b1(&woken, 21), c1(&woken, 31);
  for (auto* w : {&a1, &a2, &a3}) w->waiter.key = "key-a";
  b1.waiter.key = "key-b";
  c1.waiter.key = "key-c";
  for (auto* w : {&a1, &a2, &a3, &b1, &c1}) ASSERT_TRUE(fleet.dispatcher.enqueue(&w->waiter));
  for (int i = 0; i < 5; ++i) fleet.dispatcher.release(0, true);
  // a's hundred would otherwise hold back b's and c's one.
  EXPECT_EQ(woken, (std::vector<int>{11, 21, 31, 12, 13}));
}

TEST(DispatcherFairShare, WithoutKeysTheQueueIsFifo) {
  Fleet fleet(1, Balance::least_busy);
  fleet.granted();
  std::vector<int> woken;
  TestWaiter first(&woken, 1), second(&woken, 2), third(&woken, 3);
  for (auto* w : {&first, &second, &third}) ASSERT_TRUE(fleet.dispatcher.enqueue(&w->waiter));
  for (int i = 0; i < 3; ++i) fleet.dispatcher.release(0, true);
  EXPECT_EQ(woken, (std::vector<int>{1, 2, 3}));
}

TEST(DispatcherFairShare, AKeyWhoseWaiterCannotBeServedDoesNotBlockTheOthers) {
  Fleet fleet(2, Balance::least_busy);
  fleet.registry.report_models(0, listing({"a"}));
  fleet.registry.report_models(1, listing({"b"}));
  fleet.granted();
  fleet.granted();
  std::vector<int> woken;
  TestWaiter wants_b(&woken, 1), wants_a(&woken, 2);
  wants_b.waiter.key = "key-x";
  wants_b.waiter.model = "b";
  wants_a.waiter.key = "key-y";
  wants_a.waiter.model = "a";
  ASSERT_TRUE(fleet.dispatcher.enqueue(&wants_b.waiter));
  ASSERT_TRUE(fleet.dispatcher.enqueue(&wants_a.waiter));
  fleet.dispatcher.release(0, true);  // child 0 lists only a: key-x's turn is skipped
  EXPECT_EQ(woken, (std::vector<int>{2}));
  fleet.dispatcher.release(1, true);
  EXPECT_EQ(woken, (std::vector<int>{2, 1}));
}
