#include "coordinator/state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "coordinator/json_check.hpp"
#include "coordinator/utc_time.hpp"

namespace coordinator {

namespace {

using json = nlohmann::json;
using std::chrono::system_clock;
namespace fs = std::filesystem;

std::error_code last_error() {
  return {errno, std::system_category()};
}

// A profile name as it may appear in a note: printable ASCII, bounded, so a
// damaged file cannot put control characters into a log line.
std::string printable(std::string_view name) {
  std::string out;
  for (const char c : name.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (name.size() > 64) out += "...";
  return out;
}

std::optional<ModelCooldownState> cooldown_from(const json& saved) {
  if (!saved.is_object()) return std::nullopt;
  const auto model = saved.find("model");
  const auto until = saved.find("until");
  if (model == saved.end() || !model->is_string() || model->get_ref<const std::string&>().empty()) return std::nullopt;
  if (until == saved.end() || !until->is_string()) return std::nullopt;
  const auto until_time = parse_utc(until->get_ref<const std::string&>());
  if (!until_time) return std::nullopt;
  ModelCooldownState cooldown{model->get<std::string>(), *until_time, {}};
  if (const auto reason = saved.find("reason"); reason != saved.end() && reason->is_string()) {
    cooldown.reason = reason->get<std::string>();
  }
  return cooldown;
}

std::optional<ProfileFileStamp> stamp_from(const json& saved) {
  if (!saved.is_object()) return std::nullopt;
  const auto mtime = saved.find("mtime_ns");
  const auto size = saved.find("size");
  if (mtime == saved.end() || !mtime->is_number_integer() || size == saved.end() || !size->is_number_unsigned()) {
    return std::nullopt;
  }
  // A number above INT64_MAX is stored unsigned: no mtime of a real file.
  if (mtime->is_number_unsigned() && mtime->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    return std::nullopt;
  }
  return ProfileFileStamp{mtime->get<std::int64_t>(), size->get<std::uint64_t>()};
}

// Reads a boolean member; a member of another type is noted and read as false.
bool flag_from(const json& saved, std::string_view name, const std::string& where, std::vector<std::string>& skipped) {
  const auto found = saved.find(name);
  if (found == saved.end()) return false;
  if (found->is_boolean()) return found->get<bool>();
  skipped.push_back(where + ": " + std::string(name) + " is not true or false");
  return false;
}

ProfileState profile_from(const json& saved, const std::string& where, system_clock::time_point now,
                          std::vector<std::string>& skipped) {
  ProfileState profile;
  if (const auto cooldowns = saved.find("cooldowns"); cooldowns != saved.end()) {
    if (!cooldowns->is_array()) {
      skipped.push_back(where + ": cooldowns is not a list");
    } else {
      std::size_t index = 0;
      for (const json& entry : *cooldowns) {
        auto cooldown = cooldown_from(entry);
        if (!cooldown) {
          skipped.push_back(where + ": cooldown " + std::to_string(index) + " has no model or no readable time");
        } else if (cooldown->until > now) {
          profile.cooldowns.push_back(std::move(*cooldown));
        }
        ++index;
      }
    }
  }
  profile.needs_relogin = flag_from(saved, "needs_relogin", where, skipped);
  profile.parked = flag_from(saved, "parked", where, skipped);
  if (const auto stamp = saved.find("relogin_file_stamp"); stamp != saved.end() && !stamp->is_null()) {
    profile.relogin_file_stamp = stamp_from(*stamp);
    if (!profile.relogin_file_stamp) skipped.push_back(where + ": relogin_file_stamp is not {mtime_ns, size}");
  }
  return profile;
}

// The part of parse_state that may meet a type error or allocation failure.
ParsedState parse_document(std::string_view text, system_clock::time_point now) {
  ParsedState parsed;
  const JsonCheck check = check_json(text, kStateFileMaxDepth);
  if (!check.valid) return {std::nullopt, "not valid JSON (" + check.error + ")", {}};
  if (!check.is_object) return {std::nullopt, "not a JSON object", {}};
  const json document = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!document.is_object()) return {std::nullopt, "not a JSON object", {}};
  const auto version = document.find("version");
  if (version == document.end()) return {std::nullopt, "no version field", {}};
  if (!version->is_number_integer()) return {std::nullopt, "version is not an integer", {}};
  if (version->is_number_unsigned() ? version->get<std::uint64_t>() != std::uint64_t{kStateFileVersion}
                                    : version->get<std::int64_t>() != std::int64_t{kStateFileVersion}) {
    return {std::nullopt,
            "version " + version->dump() + ", this program reads version " + std::to_string(kStateFileVersion),
            {}};
  }
  FleetState state;
  if (const auto profiles = document.find("profiles"); profiles != document.end()) {
    if (!profiles->is_object()) {
      parsed.skipped.push_back("profiles is not an object");
    } else {
      for (const auto& [name, saved] : profiles->items()) {
        const std::string where = "profile " + printable(name);
        if (!saved.is_object()) {
          parsed.skipped.push_back(where + ": not an object");
          continue;
        }
        state.profiles.emplace(name, profile_from(saved, where, now, parsed.skipped));
      }
    }
  }
  if (const auto usage = document.find("usage"); usage != document.end() && !usage->is_null()) {
    if (usage->is_object()) {
      state.usage = *usage;
    } else {
      parsed.skipped.push_back("usage is not an object");
    }
  }
  parsed.state = std::move(state);
  return parsed;
}

struct FileText {
  std::string text;
  std::error_code error;  // reading failed
  std::string problem;    // read, but no file this program wrote
};

FileText read_state_file(const fs::path& path) {
  FileText file;
  // O_NONBLOCK: a FIFO put in the file's place must not hang the start.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    file.error = last_error();
    return file;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    file.error = last_error();
  } else if (!S_ISREG(st.st_mode)) {
    file.problem = "not a regular file";
  } else if (static_cast<std::uintmax_t>(st.st_size) > kStateFileMaxBytes) {
    file.problem = "larger than " + std::to_string(kStateFileMaxBytes >> 20) + " MiB";
  } else {
    char buffer[65536];
    while (true) {
      const ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) file.error = last_error();
      if (got <= 0) break;
      file.text.append(buffer, static_cast<std::size_t>(got));
      if (file.text.size() > kStateFileMaxBytes) {  // it grew while being read
        file.problem = "larger than " + std::to_string(kStateFileMaxBytes >> 20) + " MiB";
        break;
      }
    }
  }
  ::close(fd);
  return file;
}

// Renames the unusable file next to itself, never over another file.
std::pair<fs::path, std::error_code> set_aside(const fs::path& path, system_clock::time_point now) {
  const std::string base = path.string() + ".corrupt-" + format_utc_compact(now);
  for (int attempt = 1; attempt <= 100; ++attempt) {
    const fs::path target = attempt == 1 ? fs::path(base) : fs::path(base + "-" + std::to_string(attempt));
    struct stat st {};
    if (::lstat(target.c_str(), &st) == 0) continue;
    if (::rename(path.c_str(), target.c_str()) != 0) return {fs::path{}, last_error()};
    return {target, {}};
  }
  return {fs::path{}, std::make_error_code(std::errc::file_exists)};
}

std::error_code write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t written = ::write(fd, text.data(), text.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return last_error();
    text.remove_prefix(static_cast<std::size_t>(written));
  }
  return {};
}

// Writes `text` to a new file `temporary` (0600) and syncs it to disk.
std::error_code write_synced(const fs::path& temporary, std::string_view text) {
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return last_error();
  // A leftover temporary of an earlier process with this pid keeps its mode: set it.
  std::error_code error = ::fchmod(fd, 0600) == 0 ? std::error_code{} : last_error();
  if (!error) error = write_all(fd, text);
  if (!error && ::fsync(fd) != 0) error = last_error();
  if (::close(fd) != 0 && !error) error = last_error();
  return error;
}

std::error_code sync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  const std::error_code error = ::fsync(fd) == 0 ? std::error_code{} : last_error();
  ::close(fd);
  return error;
}

}  // namespace

nlohmann::json to_json(const FleetState& state) {
  json profiles = json::object();
  for (const auto& [name, profile] : state.profiles) {
    json cooldowns = json::array();
    for (const auto& cooldown : profile.cooldowns) {
      cooldowns.push_back(
          {{"model", cooldown.model}, {"until", format_utc(cooldown.until)}, {"reason", cooldown.reason}});
    }
    json saved = {
        {"cooldowns", std::move(cooldowns)}, {"needs_relogin", profile.needs_relogin}, {"parked", profile.parked}};
    if (profile.relogin_file_stamp) {
      saved["relogin_file_stamp"] = {{"mtime_ns", profile.relogin_file_stamp->mtime_ns},
                                     {"size", profile.relogin_file_stamp->size}};
    }
    profiles[name] = std::move(saved);
  }
  json document = {{"version", kStateFileVersion}, {"profiles", std::move(profiles)}};
  if (!state.usage.is_null()) document["usage"] = state.usage;
  return document;
}

ParsedState parse_state(std::string_view text, system_clock::time_point now) {
  if (text.size() > kStateFileMaxBytes) {
    return {std::nullopt, "larger than " + std::to_string(kStateFileMaxBytes >> 20) + " MiB", {}};
  }
  try {
    return parse_document(text, now);
  } catch (const std::exception&) {  // allocation failure; type errors are checked before each read
    return {std::nullopt, "could not be read (out of memory?)", {}};
  }
}

LoadResult load_state(const fs::path& path, system_clock::time_point now) {
  LoadResult result;
  try {
    FileText file = read_state_file(path);
    if (file.error == std::errc::no_such_file_or_directory) return result;  // missing: a fresh start
    std::string reason;
    if (file.error) {
      reason = "cannot be read: " + file.error.message();
    } else if (!file.problem.empty()) {
      reason = std::move(file.problem);
    } else {
      ParsedState parsed = parse_state(file.text, now);
      if (parsed.state) {
        result.outcome = LoadResult::Outcome::loaded;
        result.state = std::move(*parsed.state);
        result.skipped = std::move(parsed.skipped);
        return result;
      }
      reason = std::move(parsed.refusal);
    }
    result.outcome = LoadResult::Outcome::set_aside;
    const auto [moved_to, move_error] = set_aside(path, now);
    result.set_aside_path = moved_to;
    result.reason = move_error ? reason + "; could not be moved aside: " + move_error.message()
                               : reason + "; moved to " + moved_to.filename().string();
  } catch (const std::exception&) {  // allocation failure: start fresh, keep the file
    result = LoadResult{};
    result.outcome = LoadResult::Outcome::set_aside;
    result.reason = "could not be read (out of memory?)";
  }
  return result;
}

std::error_code save_state_atomically(const fs::path& path, const nlohmann::json& document) {
  try {
    // Indented: an operator may read it. `replace`: names are not always UTF-8.
    const std::string text = document.dump(1, ' ', false, json::error_handler_t::replace) + '\n';
    const fs::path temporary = path.string() + ".tmp-" + std::to_string(::getpid());
    std::error_code error = write_synced(temporary, text);
    if (!error && ::rename(temporary.c_str(), path.c_str()) != 0) error = last_error();
    if (error) {
      ::unlink(temporary.c_str());
      return error;
    }
    // The rename itself reaches the disk only with the folder.
    const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
    return sync_folder(folder);
  } catch (const std::exception&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

}  // namespace coordinator
