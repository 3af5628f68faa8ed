#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace coordinator {

struct Profile {
  std::string name;            // the file's stem; names the child and its log file
  std::filesystem::path path;  // absolute
};

struct SkippedProfile {
  std::filesystem::path path;
  std::string reason;  // never contains the file's content
};

struct ProfileDiscovery {
  std::vector<Profile> profiles;        // sorted by file name
  std::vector<SkippedProfile> skipped;  // unreadable or not a JSON object
  std::string error;                    // set when the folder itself is unusable
};

// Finds every `*.json` in `dir`, sorted by file name, keeping those that hold a
// JSON object.
ProfileDiscovery discover_profiles(const std::filesystem::path& dir);

}  // namespace coordinator
