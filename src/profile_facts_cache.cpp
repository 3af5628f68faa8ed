#include "coordinator/profile_facts_cache.hpp"

#include <fstream>
#include <iterator>

namespace coordinator {

namespace {

constexpr std::uintmax_t kMaxProfileBytes = 16u << 20;  // a storage state is kilobytes; refuse to slurp a huge file

// Reads `entry.path` again: its facts, its time, or why not.
void read_entry(ProfileFactsCache::Entry& entry) {
  entry.facts = ProfileFacts{};
  entry.problem.clear();
  entry.file_time.reset();
  std::error_code ec;
  const auto size = std::filesystem::file_size(entry.path, ec);
  const auto written = ec ? std::filesystem::file_time_type{} : std::filesystem::last_write_time(entry.path, ec);
  if (ec || size > kMaxProfileBytes) {
    entry.problem = ec ? "cannot read the file: " + ec.message() : std::string("the file is too large");
    return;
  }
  entry.file_time =
      std::chrono::time_point_cast<std::chrono::system_clock::duration>(std::chrono::file_clock::to_sys(written));
  std::ifstream in(entry.path, std::ios::binary);
  if (!in) {
    entry.problem = "cannot read the file";
    return;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  entry.facts = profile_facts(text);
  if (!entry.facts.valid) entry.problem = entry.facts.problem;
}

}  // namespace

void ProfileFactsCache::refresh(const Registry& registry) {
  for (const Child& child : registry.children()) {
    if (child.attached || child.profile.empty()) continue;
    auto found = entries_.find(child.name);
    if (found == entries_.end()) found = entries_.emplace(child.name, Entry{}).first;
    Entry& entry = found->second;
    const auto stamp = file_stamp(child.profile);
    if (stamp && entry.stamp == stamp && entry.path == child.profile) continue;
    entry.path = child.profile;
    entry.stamp = stamp;
    read_entry(entry);
  }
}

const ProfileFactsCache::Entry* ProfileFactsCache::find(std::string_view name) const {
  const auto found = entries_.find(name);
  return found == entries_.end() ? nullptr : &found->second;
}

bool ProfileFactsCache::expiring_soon(const Entry& entry, std::chrono::system_clock::time_point wall_now) const {
  return entry.facts.earliest_expiry && *entry.facts.earliest_expiry - wall_now <= expiry_warning_;
}

}  // namespace coordinator
