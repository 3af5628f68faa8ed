#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/child.hpp"

using namespace coordinator;

namespace {

using S = ChildState;
using E = ChildEvent;
using Next = std::optional<ChildState>;

constexpr Next kNo = std::nullopt;  // the event is ignored in this state

constexpr std::array<ChildState, 11> kStates{S::starting, S::ready,   S::busy,         S::unhealthy,
                                             S::cooling,  S::exited,  S::backoff,      S::failed,
                                             S::draining, S::retired, S::needs_relogin};
static_assert(kStates == kChildStates, "the table covers every state, in declaration order");

constexpr std::array<ChildEvent, 18> kEvents{
    E::spawned,       E::health_ok,     E::health_failed, E::forward_failed, E::slots_full,        E::slot_freed,
    E::rate_limited,  E::cooldown_over, E::drain,         E::exited,         E::restart_scheduled, E::parked,
    E::ready_timeout, E::undrain,       E::ejected,       E::quota_signal,   E::recycled,          E::logged_out};

struct Row {
  ChildState state;
  std::array<Next, kEvents.size()> next;  // in the order of kEvents
};

// The whole state machine with retire_on_exit = false. Columns, in order:
//   spawned, health_ok, health_failed, forward_failed, slots_full, slot_freed, rate_limited,
//   cooldown_over, drain, exited, restart_scheduled, parked, ready_timeout, undrain, ejected, quota_signal,
//   recycled, logged_out
// clang-format off
const std::array<Row, kStates.size()> kTable{{
  {S::starting,  {S::starting, S::ready, kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      S::draining, S::exited, kNo,        kNo,       S::unhealthy, kNo, kNo, kNo, S::unhealthy, kNo}},
  {S::ready,     {kNo,         kNo,      S::unhealthy, S::unhealthy, S::busy, kNo,      S::cooling, kNo,      S::draining, S::exited, kNo,        kNo,       kNo,          kNo, S::cooling, S::cooling, S::unhealthy, kNo}},
  {S::busy,      {kNo,         kNo,      S::unhealthy, S::unhealthy, kNo,     S::ready, S::cooling, kNo,      S::draining, S::exited, kNo,        kNo,       kNo,          kNo, S::cooling, S::cooling, S::unhealthy, kNo}},
  {S::unhealthy, {kNo,         S::ready, kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      S::draining, S::exited, kNo,        kNo,       kNo,          kNo, kNo, S::cooling, S::unhealthy, kNo}},
  {S::cooling,   {kNo,         kNo,      kNo,          kNo,          kNo,     kNo,      kNo,        S::ready, S::draining, S::exited, kNo,        kNo,       kNo,          kNo, kNo, S::cooling, S::unhealthy, kNo}},
  {S::exited,    {S::starting, kNo,      kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      kNo,         kNo,       S::backoff, S::failed, kNo,          kNo, kNo, kNo, kNo, S::needs_relogin}},
  {S::backoff,   {S::starting, kNo,      kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      kNo,         kNo,       kNo,        S::failed, kNo,          kNo, kNo, kNo, kNo, S::needs_relogin}},
  {S::failed,    {kNo,         kNo,      kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      kNo,         kNo,       S::backoff, kNo,       kNo,          kNo, kNo, kNo, kNo, kNo}},
  {S::draining,  {kNo,         kNo,      kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      kNo,         S::exited, kNo,        kNo,       kNo,          S::unhealthy, kNo, kNo, kNo, kNo}},
  {S::retired,   {kNo,         kNo,      kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      kNo,         kNo,       S::backoff, kNo,       kNo,          S::backoff, kNo, kNo, kNo, kNo}},
  {S::needs_relogin, {kNo,     kNo,      kNo,          kNo,          kNo,     kNo,      kNo,        kNo,      kNo,         kNo,       S::backoff, kNo,       kNo,          kNo, kNo, kNo, kNo, kNo}},
}};
// clang-format on

std::string show(Next next) {
  return next ? std::string(to_string(*next)) : std::string("(ignored)");
}

void expect_table(bool retire_on_exit) {
  for (std::size_t s = 0; s < kStates.size(); ++s) {
    ASSERT_EQ(kTable[s].state, kStates[s]) << "table rows must follow kStates";
    for (std::size_t e = 0; e < kEvents.size(); ++e) {
      Next expected = kTable[s].next[e];
      // The cells retire_on_exit changes: a drained child's exit is final, and
      // a slot with no process left is retired at once when stopped for good.
      if (retire_on_exit && kStates[s] == S::draining && kEvents[e] == E::exited) expected = S::retired;
      if (retire_on_exit && (kStates[s] == S::exited || kStates[s] == S::backoff || kStates[s] == S::needs_relogin) &&
          kEvents[e] == E::drain) {
        expected = S::retired;
      }
      const Next got = next_state(kStates[s], kEvents[e], retire_on_exit);
      EXPECT_EQ(got, expected) << to_string(kStates[s]) << " + " << to_string(kEvents[e])
                               << " (retire_on_exit=" << retire_on_exit << "): expected " << show(expected) << ", got "
                               << show(got);
    }
  }
}

}  // namespace

TEST(ChildState, EveryTransitionWithoutRetireOnExit) {
  expect_table(false);
}

TEST(ChildState, EveryTransitionWithRetireOnExit) {
  expect_table(true);
}

TEST(ChildState, RetireOnExitMattersForADrainedOrStoppedChild) {
  EXPECT_EQ(next_state(S::draining, E::exited, true), S::retired);
  EXPECT_EQ(next_state(S::draining, E::exited, false), S::exited);
  for (ChildState state : {S::starting, S::ready, S::busy, S::unhealthy, S::cooling}) {
    EXPECT_EQ(next_state(state, E::exited, true), S::exited) << to_string(state);
  }
}

TEST(ChildState, AGoneProcessIsNeverServing) {
  // No event takes a child that is not running (exited, backoff, failed,
  // retired) straight into a serving state: it must be spawned first.
  for (ChildState state : {S::exited, S::backoff, S::failed, S::retired, S::needs_relogin}) {
    for (ChildEvent event : kEvents) {
      for (bool retire : {false, true}) {
        const Next next = next_state(state, event, retire);
        if (next) {
          EXPECT_FALSE(is_serving(*next)) << to_string(state) << " + " << to_string(event);
        }
      }
    }
  }
}

TEST(ChildState, StoppedStatesLeaveOnlyByAnOperatorsRestart) {
  // failed and retired are final for every automatic event; only a restart
  // (or undrain) an operator asks for moves them, and only to backoff.
  for (ChildEvent event : kEvents) {
    for (bool retire : {false, true}) {
      const bool operator_event = event == E::restart_scheduled || event == E::undrain;
      const Next from_retired = next_state(S::retired, event, retire);
      const Next from_failed = next_state(S::failed, event, retire);
      EXPECT_EQ(from_retired, operator_event ? Next{S::backoff} : kNo) << to_string(event);
      EXPECT_EQ(from_failed, event == E::restart_scheduled ? Next{S::backoff} : kNo) << to_string(event);
    }
  }
}

TEST(ChildState, StateNames) {
  EXPECT_EQ(to_string(S::starting), "starting");
  EXPECT_EQ(to_string(S::ready), "ready");
  EXPECT_EQ(to_string(S::busy), "busy");
  EXPECT_EQ(to_string(S::unhealthy), "unhealthy");
  EXPECT_EQ(to_string(S::cooling), "cooling");
  EXPECT_EQ(to_string(S::exited), "exited");
  EXPECT_EQ(to_string(S::backoff), "backoff");
  EXPECT_EQ(to_string(S::failed), "failed");
  EXPECT_EQ(to_string(S::draining), "draining");
  EXPECT_EQ(to_string(S::retired), "retired");
  EXPECT_EQ(to_string(S::needs_relogin), "needs_relogin");
  EXPECT_EQ(to_string(static_cast<ChildState>(99)), "unknown");
}

TEST(ChildState, EventNames) {
  EXPECT_EQ(to_string(E::spawned), "spawned");
  EXPECT_EQ(to_string(E::health_ok), "health_ok");
  EXPECT_EQ(to_string(E::health_failed), "health_failed");
  EXPECT_EQ(to_string(E::forward_failed), "forward_failed");
  EXPECT_EQ(to_string(E::slots_full), "slots_full");
  EXPECT_EQ(to_string(E::slot_freed), "slot_freed");
  EXPECT_EQ(to_string(E::rate_limited), "rate_limited");
  EXPECT_EQ(to_string(E::cooldown_over), "cooldown_over");
  EXPECT_EQ(to_string(E::drain), "drain");
  EXPECT_EQ(to_string(E::exited), "exited");
  EXPECT_EQ(to_string(E::restart_scheduled), "restart_scheduled");
  EXPECT_EQ(to_string(E::parked), "parked");
  EXPECT_EQ(to_string(E::ready_timeout), "ready_timeout");
  EXPECT_EQ(to_string(E::undrain), "undrain");
  EXPECT_EQ(to_string(E::ejected), "ejected");
  EXPECT_EQ(to_string(E::quota_signal), "quota_signal");
  EXPECT_EQ(to_string(E::recycled), "recycled");
  EXPECT_EQ(to_string(E::logged_out), "logged_out");
  EXPECT_EQ(to_string(static_cast<ChildEvent>(99)), "unknown");
}

TEST(ChildState, OnlyReadyAndBusyAreServing) {
  for (ChildState state : kStates) {
    EXPECT_EQ(is_serving(state), state == S::ready || state == S::busy) << to_string(state);
  }
  static_assert(is_serving(S::ready) && is_serving(S::busy) && !is_serving(S::draining));
}

TEST(ChildState, ALoggedOutAccountWaitsForANewProfile) {
  // Only the exit of a process that said it is logged out leads there, and
  // nothing automatic leads out: no restart (so no restart budget is spent),
  // never parked. A reload that finds a new profile file (or an operator)
  // schedules a restart; stopping it for good retires it.
  EXPECT_EQ(next_state(S::exited, E::logged_out, false), S::needs_relogin);
  for (ChildState state : {S::starting, S::ready, S::busy, S::unhealthy, S::cooling, S::draining}) {
    EXPECT_EQ(next_state(state, E::logged_out, false), kNo) << to_string(state) << ": its exit decides";
  }
  for (ChildEvent event : kEvents) {
    for (bool retire : {false, true}) {
      Next expected = kNo;
      if (event == E::restart_scheduled) expected = S::backoff;
      if (event == E::drain && retire) expected = S::retired;
      EXPECT_EQ(next_state(S::needs_relogin, event, retire), expected)
          << to_string(event) << " (retire_on_exit=" << retire << ")";
    }
  }
  EXPECT_FALSE(is_serving(S::needs_relogin));
}

TEST(ChildState, ARecycledChildLeavesRotationUntilItsExit) {
  for (ChildState state : {S::starting, S::ready, S::busy, S::unhealthy, S::cooling}) {
    EXPECT_EQ(next_state(state, E::recycled, false), S::unhealthy) << to_string(state);
  }
  EXPECT_EQ(next_state(S::draining, E::recycled, false), kNo) << "already being stopped";
}
