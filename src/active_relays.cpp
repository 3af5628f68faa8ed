#include <algorithm>

#include "coordinator/relay.hpp"

namespace coordinator {

// ActiveRelays (declared in relay.hpp): the relays in progress, for cancels
// and for a quota signal in a child's log.

bool ActiveRelays::cancel(const std::string& req_id) {
  const auto found = by_req_id_.find(req_id);
  if (found == by_req_id_.end()) return false;
  const auto signals = std::move(found->second);
  by_req_id_.erase(found);
  interrupt_relay(signals, &RelaySignals::cancelled);
  return true;
}

void ActiveRelays::add_attempt(std::size_t child, RelaySignals* signals) {
  if (child >= attempts_.size()) attempts_.resize(child + 1);
  attempts_[child].push_back(signals);
}

void ActiveRelays::remove_attempt(std::size_t child, RelaySignals* signals) {
  auto& list = attempts_.at(child);
  if (const auto found = std::find(list.begin(), list.end(), signals); found != list.end()) {
    *found = list.back();
    list.pop_back();
  }
}

void ActiveRelays::retry_elsewhere(std::size_t child) {
  if (child >= attempts_.size()) return;
  for (RelaySignals* signals : attempts_[child]) {
    signals->quota_retry = true;
    error_code ignored;
    if (signals->upstream != nullptr) signals->upstream->socket().cancel(ignored);
  }
}

std::vector<std::string> ActiveRelays::models_on(std::size_t child) const {
  std::vector<std::string> models;
  if (child >= attempts_.size()) return models;
  for (const RelaySignals* signals : attempts_[child]) {
    if (signals->model.empty()) return {};
    if (std::find(models.begin(), models.end(), signals->model) == models.end()) models.emplace_back(signals->model);
  }
  return models;
}

}  // namespace coordinator
