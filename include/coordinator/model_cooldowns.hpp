#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/model_catalog.hpp"

namespace coordinator {

using Clock = std::chrono::steady_clock;

// Why an account stopped taking requests for a while.
enum class CoolingCause {
  none,
  rate_limited,  // a 429
  quota,         // a 530, an in-stream quota or rotation error, the child's own log line
  ejected,       // a run of server errors (the child, not its account)
};
std::string_view to_string(CoolingCause cause);

// One model of one account out of service until `until`: a quota signal or a
// 429 for a request that named it. `model` is its model_key (the id as the
// real child compares it).
struct ModelCooldown {
  std::string model;
  Clock::time_point until;
  CoolingCause cause = CoolingCause::quota;
  std::string reason;  // short, for /ready; never a body
};

// The cooldowns of one account. Few entries (one per model in use), so a
// vector searched in order is the fastest thing here.
class ModelCooldowns {
 public:
  // Cools `model` until `until`; a cooldown already running ends at the later of the two.
  void add(std::string_view model, Clock::time_point until, CoolingCause cause, std::string_view reason);
  // The cooldown of `model` that has not ended at `now`, if any.
  const ModelCooldown* find(std::string_view model, Clock::time_point now) const;
  // True when `models` lists at least one model and every one of them is cooling at `now`.
  bool covers_every(const ModelSet& models, Clock::time_point now) const;
  // Drops the ones ended at `now`; returns how many.
  std::size_t drop_ended(Clock::time_point now);
  // The first end still ahead (any entry, ended or not: the caller drops ended ones first).
  std::optional<Clock::time_point> first_end() const;
  // The earliest end among the models `models` lists (the end of a child that cools for all of them).
  std::optional<Clock::time_point> first_end_of(const ModelSet& models) const;

  bool empty() const { return entries_.empty(); }
  const std::vector<ModelCooldown>& entries() const { return entries_; }
  void clear() { entries_.clear(); }

 private:
  std::vector<ModelCooldown> entries_;
};

}  // namespace coordinator
