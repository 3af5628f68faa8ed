#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/profile_facts.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/working_profile.hpp"

namespace coordinator {

// What each child's profile file says (cookie count, first cookie expiry),
// read by the control plane's once-a-second tick and only when the file's
// stamp (inode, mtime, size) changed: /ready, the status page, GET
// /admin/profiles and the alerts read this, never the files.
class ProfileFactsCache {
 public:
  explicit ProfileFactsCache(std::chrono::system_clock::duration expiry_warning) : expiry_warning_(expiry_warning) {}

  struct Entry {
    std::filesystem::path path;
    std::optional<FileStamp> stamp;
    std::optional<std::chrono::system_clock::time_point> file_time;
    ProfileFacts facts;
    std::string problem;  // why the file could not be used (never quotes it)
  };

  // Re-reads the profile files of the registry's spawned children whose stamp changed.
  void refresh(const Registry& registry);
  // The facts of child `name`'s profile; null before its first refresh.
  const Entry* find(std::string_view name) const;
  // True when `entry`'s first cookie expires within --expiry-warning of `wall_now` (or has expired).
  bool expiring_soon(const Entry& entry, std::chrono::system_clock::time_point wall_now) const;
  std::chrono::system_clock::duration expiry_warning() const { return expiry_warning_; }

 private:
  std::chrono::system_clock::duration expiry_warning_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace coordinator
