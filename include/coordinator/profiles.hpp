#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
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

namespace coordinator {

// The KEY=VALUE lines of a profile's sibling `{name}.env` file: blank lines
// and `#` comments skipped, an optional `export ` prefix, values optionally
// in matching quotes. Bad lines are reported by number, never by content.
struct EnvFile {
  std::vector<std::pair<std::string, std::string>> variables;
  std::vector<std::string> errors;
};
EnvFile parse_env_file(std::string_view text);

// The sibling env file of a profile: `{dir}/{name}.env`.
std::filesystem::path env_file_for(const std::filesystem::path& profile);

}  // namespace coordinator
