#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

namespace coordinator {

// The fleet's state file (issue 14): what must survive a restart — cooldowns
// per model, profiles waiting for a new login, parked profiles, and the usage
// book. Nothing here reads a clock: `now` is passed in.
//
// Format (version 1), times as ISO-8601 UTC strings (utc_time.hpp):
//   {
//     "version": 1,
//     "profiles": {
//       "alice": {
//         "cooldowns": [{"model": "gemini-2.5-pro", "until": "2024-05-01T13:00:00.000Z", "reason": "quota"}],
//         "needs_relogin": true,
//         "relogin_file_stamp": {"mtime_ns": 1714567890123456789, "size": 5120},   // or absent
//         "parked": false
//       }
//     },
//     "usage": { ... UsageBook::to_state() ... }
//   }

inline constexpr int kStateFileVersion = 1;
// A bigger file is no state this program wrote: set aside unread.
inline constexpr std::uintmax_t kStateFileMaxBytes = 64u << 20;
// Deeper nesting is refused before parsing (the file nests 5 levels).
inline constexpr std::size_t kStateFileMaxDepth = 32;

struct ModelCooldownState {
  std::string model;
  std::chrono::system_clock::time_point until;
  std::string reason;
  bool operator==(const ModelCooldownState&) const = default;
};

// Identifies one version of a profile file: when needs_relogin was set, the file
// it was set for, so that the profile waits for a new file after a restart too.
// Fill it from working_profile.hpp's file_stamp(): a new login writes a new file,
// which changes at least its mtime.
struct ProfileFileStamp {
  std::int64_t mtime_ns = 0;  // st_mtim, nanoseconds since the epoch
  std::uint64_t size = 0;
  bool operator==(const ProfileFileStamp&) const = default;
};

struct ProfileState {
  std::vector<ModelCooldownState> cooldowns;
  bool needs_relogin = false;
  std::optional<ProfileFileStamp> relogin_file_stamp;
  bool parked = false;
  bool operator==(const ProfileState&) const = default;
};

struct FleetState {
  std::map<std::string, ProfileState, std::less<>> profiles;
  nlohmann::json usage;  // UsageBook::to_state(); null when there is none
};

nlohmann::json to_json(const FleetState& state);

// The text of a state file read back. Malformed parts inside a well-formed file
// (a cooldown without a readable time, a profile that is no object) are skipped
// and named in `skipped`; a file that is no JSON object of version 1 is refused
// with a one-line reason that never quotes the file. Cooldowns that ended at or
// before `now` are dropped. Never throws.
struct ParsedState {
  std::optional<FleetState> state;  // nullopt: refused
  std::string refusal;              // why, when refused
  std::vector<std::string> skipped;
};
ParsedState parse_state(std::string_view text, std::chrono::system_clock::time_point now);

struct LoadResult {
  enum class Outcome {
    loaded,     // `state` holds the file's contents
    missing,    // no file: a fresh start, nothing to warn about
    set_aside,  // unreadable, corrupt or another version: moved away, a fresh start
  };
  Outcome outcome = Outcome::missing;
  FleetState state;
  std::string reason;                    // set_aside: one line for a warning
  std::filesystem::path set_aside_path;  // set_aside: where the file went; empty if it could not be moved
  std::vector<std::string> skipped;      // loaded: parts dropped as malformed (parse_state)
};

// Reads the state file at `path`. A file that cannot be used is renamed to
// PATH.corrupt-YYYYmmddTHHMMSSZ (from `now`; "-2", "-3"... if taken), never
// deleted, so an operator can look at it. Never throws.
LoadResult load_state(const std::filesystem::path& path, std::chrono::system_clock::time_point now);

// Replaces the file at `path` with `document` so that a crash at any moment leaves
// either the old or the new complete file: writes PATH.tmp-PID (mode 0600: it holds
// account state), fsyncs it, renames it over PATH and fsyncs the folder. One writer
// per path (the temporary's name is per process). Returns the first error; the
// temporary is removed on failure.
std::error_code save_state_atomically(const std::filesystem::path& path, const nlohmann::json& document);

}  // namespace coordinator
