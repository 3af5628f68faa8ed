#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

class Supervisor;

// PUT and DELETE /admin/profiles/{name}: an operator uploads a Playwright
// storage state or takes a profile out of the fleet without a shell on the
// host. The checks and names are pure (profile_admin_test); ProfileAdmin does
// the file work and hands the change to the supervisor.

// A storage state is a few KB of cookies; an upload this large is a mistake.
inline constexpr std::size_t kMaxProfileUpload = 1u << 20;

// The path's {name} after /admin/profiles/ (not decoded: a valid name needs no
// escapes); empty when the path has no such shape.
std::string_view profile_name_in_path(std::string_view path);

// Why `name` cannot name a profile file, or "": 1-64 of [A-Za-z0-9._-], no
// leading '.' (so neither "." nor ".." nor a hidden file).
std::string profile_name_problem(std::string_view name);

// Why `body` is not a storage state, or "": a JSON object with a `cookies`
// array of objects, and `origins`, when present, an array. Never quotes the body.
std::string storage_state_problem(std::string_view body);

// Where DELETE moves a profile: {profiles_dir}/removed/{name}.json.{YYYYmmddTHHMMSSZ}.
std::filesystem::path moved_aside_path(const std::filesystem::path& profiles_dir, std::string_view name,
                                       std::chrono::system_clock::time_point now);

// One answer of the admin API: status and JSON body (errors in the one error shape).
struct AdminAnswer {
  unsigned status = 200;
  std::string body;
};

// Does the work of the two endpoints on the I/O thread. `supervisor` is null
// in attach mode (--upstream): there are no profiles to manage then.
class ProfileAdmin {
 public:
  ProfileAdmin(const Config& config, Registry& registry, Supervisor* supervisor)
      : config_(config), registry_(registry), supervisor_(supervisor) {}

  // `method` is PUT or DELETE; `name` as it came in the path.
  AdminAnswer answer(http::verb method, std::string_view name, std::string_view body);

 private:
  AdminAnswer put(const std::string& name, std::string_view body);
  AdminAnswer remove(const std::string& name);
  // Why profiles cannot be changed through the API in this run, or "".
  std::string mode_problem() const;
  std::filesystem::path file_of(const std::string& name) const;

  const Config& config_;
  Registry& registry_;
  Supervisor* supervisor_;
};

}  // namespace coordinator
