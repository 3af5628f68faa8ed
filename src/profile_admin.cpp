#include "coordinator/profile_admin.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <system_error>

#include "coordinator/errors.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/supervisor.hpp"
#include "coordinator/utc_time.hpp"
#include "coordinator/working_profile.hpp"

namespace coordinator {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kProfilePrefix = "/admin/profiles/";
constexpr std::size_t kMaxNameLength = 64;

AdminAnswer refuse(errc error, const std::string& message) {
  return {spec_of(error).status, error_body(error, message)};
}

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

// What the answer says about the child: its state, never its profile's content.
nlohmann::json child_facts(const Child& child) {
  return {{"name", child.name},
          {"state", to_string(child.state)},
          {"ports", {{"api", child.ports.api}, {"stream", child.ports.stream}, {"camoufox", child.ports.camoufox}}},
          {"pid", child.pid},
          {"in_flight", child.in_flight},
          {"last_error", child.last_error}};
}

// Moves `from` to `to` without replacing anything there ("-2", "-3"... when
// taken); returns where it went, or an error.
std::pair<fs::path, std::string> move_without_replacing(const fs::path& from, const fs::path& to) {
  for (int attempt = 1; attempt <= 100; ++attempt) {
    const fs::path target = attempt == 1 ? to : fs::path(to.string() + "-" + std::to_string(attempt));
    struct stat st {};
    if (::lstat(target.c_str(), &st) == 0) continue;
    if (::rename(from.c_str(), target.c_str()) != 0) return {{}, std::strerror(errno)};
    return {target, {}};
  }
  return {{}, "100 files of that name are there already"};
}

}  // namespace

std::string_view profile_name_in_path(std::string_view path) {
  return path.starts_with(kProfilePrefix) ? path.substr(kProfilePrefix.size()) : std::string_view{};
}

std::string profile_name_problem(std::string_view name) {
  if (name.empty()) return "the profile name is empty";
  if (name.size() > kMaxNameLength) return "the profile name is longer than 64 characters";
  for (const char c : name) {
    if (!name_char(c)) return "the profile name may hold only letters, digits, '.', '_' and '-'";
  }
  if (name.front() == '.') return "the profile name must not start with '.'";
  return {};
}

std::string storage_state_problem(std::string_view body) {
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return "the body is not JSON";
  if (!json.is_object()) return "the body is not a JSON object";
  const auto cookies = json.find("cookies");
  if (cookies == json.end() || !cookies->is_array()) return "the body has no \"cookies\" array";
  for (const auto& cookie : *cookies) {
    if (!cookie.is_object()) return "an item of \"cookies\" is not an object";
  }
  const auto origins = json.find("origins");
  if (origins != json.end() && !origins->is_array()) return "\"origins\" is not an array";
  return {};
}

fs::path moved_aside_path(const fs::path& profiles_dir, std::string_view name,
                          std::chrono::system_clock::time_point now) {
  return profiles_dir / "removed" / (std::string(name) + ".json." + format_utc_compact(now));
}

AdminAnswer ProfileAdmin::answer(http::verb method, std::string_view name, std::string_view body) {
  if (std::string problem = mode_problem(); !problem.empty()) return refuse(errc::admin_action_refused, problem);
  if (std::string problem = profile_name_problem(name); !problem.empty()) {
    return refuse(errc::bad_request, "Bad profile name: " + problem + ".");
  }
  if (method == http::verb::put) return put(std::string(name), body);
  return remove(std::string(name));
}

std::string ProfileAdmin::mode_problem() const {
  if (supervisor_ == nullptr) {
    return "Attach mode (--upstream): the coordinator runs no profiles of its own; manage the attached children "
           "where they run.";
  }
  if (config_.shard_count > 1) {
    return "--shard splits the profiles folder between replicas by file order: add or remove files in the shared "
           "folder and reload every replica instead.";
  }
  std::error_code ec;
  if (!fs::is_directory(config_.profiles_dir, ec)) {
    return "--profiles " + config_.profiles_dir.string() + " is not a folder.";
  }
  return {};
}

fs::path ProfileAdmin::file_of(const std::string& name) const {
  std::error_code ec;
  return fs::absolute(config_.profiles_dir / (name + ".json"), ec).lexically_normal();
}

AdminAnswer ProfileAdmin::put(const std::string& name, std::string_view body) {
  if (body.size() > kMaxProfileUpload) {
    return refuse(errc::body_too_large, "A profile is at most 1 MiB; this body has " + std::to_string(body.size()) +
                                            " bytes. Nothing was written.");
  }
  if (std::string problem = storage_state_problem(body); !problem.empty()) {
    return refuse(errc::bad_request, "Not a Playwright storage state: " + problem + ". Nothing was written.");
  }
  if (std::string problem = supervisor_->cannot_take(name); !problem.empty()) {
    return refuse(errc::admin_action_refused, "Profile " + name + " cannot be taken: " + problem + ".");
  }
  const fs::path path = file_of(name);
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (!ec && fs::exists(status) && !fs::is_regular_file(status)) {
    return refuse(errc::admin_action_refused,
                  path.filename().string() + " in the profiles folder is not a regular file.");
  }
  const bool existed = !ec && fs::exists(status);
  // Synchronous on the I/O thread: a profile is a few KB (at most 1 MiB), one
  // write, two fsyncs and a rename; the child copies it when it starts.
  if (std::string error = replace_file_atomically(path, body, std::nullopt, 0600); !error.empty()) {
    spdlog::error("admin PUT profile {}: cannot write {}: {}", name, path.string(), error);
    return refuse(errc::admin_action_refused, "Cannot write " + path.filename().string() + ": " + error + ".");
  }
  const ProfileUpdate update = supervisor_->apply_profile(Profile{name, path});
  const std::string action = existed ? "replaced" : "created";
  if (!update.error.empty()) {
    spdlog::warn("admin PUT profile {}: file {} ({} bytes) but not applied: {}", name, action, body.size(),
                 update.error);
    return refuse(errc::admin_action_refused, "Profile " + name + " was written but not applied: " + update.error +
                                                  "; a reload (POST /admin/reload) applies it later.");
  }
  spdlog::info("admin PUT profile {}: file {} ({} bytes); its child {}", name, action, body.size(), update.what);
  nlohmann::json answer = {{"success", true}, {"profile", name}, {"action", action}, {"message", update.what}};
  answer["child"] = update.slot ? child_facts(registry_.at(*update.slot)) : nlohmann::json{{"state", "queued"}};
  return {existed ? 200u : 201u, dump_json(answer)};
}

AdminAnswer ProfileAdmin::remove(const std::string& name) {
  const fs::path path = file_of(name);
  std::error_code ec;
  // A symbolic link is moved itself (its target stays where it is).
  const auto status = fs::symlink_status(path, ec);
  const bool file_there = fs::is_regular_file(status) || fs::is_symlink(status);
  const bool known = supervisor_->knows_profile(name);
  if (!known && !file_there) return refuse(errc::unknown_child, "No profile named '" + name + "'.");
  nlohmann::json moved_to = nullptr;
  if (file_there) {
    // Never deleted: moved into removed/ (0700: it holds a login), so an
    // operator can put it back. Small and synchronous, like the PUT's write.
    const fs::path target = moved_aside_path(path.parent_path(), name, std::chrono::system_clock::now());
    const fs::path folder = target.parent_path();
    fs::create_directories(folder, ec);
    if (ec || ::chmod(folder.c_str(), 0700) != 0) {
      const std::string why = ec ? ec.message() : std::string(std::strerror(errno));
      spdlog::error("admin DELETE profile {}: cannot make {}: {}", name, folder.string(), why);
      return refuse(errc::admin_action_refused,
                    "Profile " + name + " stays: cannot make removed/ in the profiles folder: " + why + ".");
    }
    const auto [moved, error] = move_without_replacing(path, target);
    if (!error.empty()) {
      spdlog::error("admin DELETE profile {}: cannot move {} aside: {}", name, path.string(), error);
      return refuse(errc::admin_action_refused, "Profile " + name + " stays: cannot move its file: " + error + ".");
    }
    fsync_folder(folder);
    fsync_folder(path.parent_path());
    moved_to = moved.string();
  }
  // The file is gone from the folder first: a reload meanwhile would drain it too.
  const ProfileRemoval removal = supervisor_->remove_profile(name);
  const std::string what = removal.known ? removal.what : "was not running";
  spdlog::info("admin DELETE profile {}: its child {}; file {}", name, what,
               moved_to.is_null() ? std::string("was already gone") : "moved to " + moved_to.get<std::string>());
  nlohmann::json answer = {
      {"success", true}, {"profile", name}, {"action", "removed"}, {"moved_to", moved_to}, {"message", what}};
  if (removal.slot) answer["child"] = child_facts(registry_.at(*removal.slot));
  return {200, dump_json(answer)};
}

}  // namespace coordinator
