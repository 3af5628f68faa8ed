#include "coordinator/model_cooldowns.hpp"

#include <algorithm>

namespace coordinator {

std::string_view to_string(CoolingCause cause) {
  switch (cause) {
    case CoolingCause::none:
      return "none";
    case CoolingCause::rate_limited:
      return "rate_limited";
    case CoolingCause::quota:
      return "quota";
    case CoolingCause::ejected:
      return "ejected";
  }
  return "none";
}

void ModelCooldowns::add(std::string_view model, Clock::time_point until, CoolingCause cause, std::string_view reason) {
  const std::string_view key = model_key(model);
  for (ModelCooldown& entry : entries_) {
    if (entry.model != key) continue;
    // A later signal for the same model moves the end only forward: the
    // account is spent at least as long as the first signal said.
    if (until > entry.until) entry.until = until;
    entry.cause = cause;
    entry.reason = std::string(reason.substr(0, 200));
    return;
  }
  entries_.push_back(ModelCooldown{std::string(key), until, cause, std::string(reason.substr(0, 200))});
}

const ModelCooldown* ModelCooldowns::find(std::string_view model, Clock::time_point now) const {
  if (entries_.empty() || model.empty()) return nullptr;
  const std::string_view key = model_key(model);
  for (const ModelCooldown& entry : entries_) {
    if (entry.model == key) return entry.until > now ? &entry : nullptr;
  }
  return nullptr;
}

bool ModelCooldowns::covers_every(const ModelSet& models, Clock::time_point now) const {
  if (!models.known || models.entries.empty() || entries_.empty()) return false;
  return std::all_of(models.entries.begin(), models.entries.end(),
                     [&](const ModelEntry& entry) { return find(entry.key, now) != nullptr; });
}

std::size_t ModelCooldowns::drop_ended(Clock::time_point now) {
  const auto before = entries_.size();
  std::erase_if(entries_, [now](const ModelCooldown& entry) { return entry.until <= now; });
  return before - entries_.size();
}

std::optional<Clock::time_point> ModelCooldowns::first_end() const {
  std::optional<Clock::time_point> first;
  for (const ModelCooldown& entry : entries_) {
    if (!first || entry.until < *first) first = entry.until;
  }
  return first;
}

std::optional<Clock::time_point> ModelCooldowns::first_end_of(const ModelSet& models) const {
  std::optional<Clock::time_point> first;
  for (const ModelCooldown& entry : entries_) {
    if (!models.lists(entry.model)) continue;
    if (!first || entry.until < *first) first = entry.until;
  }
  return first;
}

}  // namespace coordinator
