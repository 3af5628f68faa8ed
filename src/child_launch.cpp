#include "coordinator/child_launch.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/process/search_path.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "coordinator/process_tree.hpp"
#include "coordinator/profiles.hpp"

namespace coordinator {

namespace bp = boost::process;
namespace fs = std::filesystem;

namespace {

const char* inherited_value(const char* const* inherited, std::string_view name) {
  for (const char* const* entry = inherited; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.size() > name.size() && text.substr(0, name.size()) == name && text[name.size()] == '=') {
      return *entry + name.size() + 1;
    }
  }
  return nullptr;
}

// The variables of child_variables an operator may have set on purpose, and
// why a different value deserves a warning.
struct Switch {
  std::string_view name;
  std::string_view value;
  std::string_view why;
};
constexpr std::array<Switch, 3> kSwitches{{
    {"AUTO_ROTATE_AUTH_PROFILE", "false", "a child would swap accounts by itself"},
    {"QUOTA_SOFT_LIMIT", kOutOfReachTokens, "with rotation off, a child stops serving once it is reached"},
    {"QUOTA_HARD_LIMIT", kOutOfReachTokens, "a child answers quota errors once it is reached"},
}};

}  // namespace

std::vector<std::string> child_command(const Config& config, const std::string& python, const Child& child,
                                       const fs::path& profile) {
  std::vector<std::string> argv{python,
                                fs::absolute(config.launcher).lexically_normal().string(),
                                "--server-port",
                                std::to_string(child.ports.api),
                                "--stream-port",
                                std::to_string(child.ports.stream),
                                "--camoufox-debug-port",
                                std::to_string(child.ports.camoufox),
                                "--active-auth-json",
                                profile.string()};
  // The launcher's three modes (launcher/config.py); with none it asks on stdin.
  switch (config.browser_mode) {
    case BrowserMode::headless:
      argv.emplace_back("--headless");
      break;
    case BrowserMode::headful:
      argv.emplace_back("--debug");
      break;
    case BrowserMode::virtual_display:
      argv.emplace_back("--virtual-display");
      break;
  }
  return argv;
}

std::vector<std::string> child_environment(const char* const* inherited, const Variables& overrides) {
  std::vector<std::string> result;
  for (const char* const* entry = inherited; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string_view key = text.substr(0, text.find('='));
    const bool replaced =
        std::any_of(overrides.begin(), overrides.end(), [&](const auto& override) { return override.first == key; });
    if (!replaced) result.emplace_back(text);
  }
  for (const auto& variable : overrides) {
    // A later line of the same key wins, as in a shell.
    const std::string prefix = variable.first + "=";
    std::erase_if(result, [&](const std::string& entry) { return entry.compare(0, prefix.size(), prefix) == 0; });
    result.push_back(prefix + variable.second);
  }
  return result;
}

Variables child_variables(const char* const* inherited) {
  Variables variables;
  for (const Switch& entry : kSwitches) {
    if (inherited_value(inherited, entry.name) == nullptr) variables.emplace_back(entry.name, entry.value);
  }
  // In the modes with a window, the child waits (up to 3 minutes) for a login
  // in that window instead of reading Enter from stdin, which is /dev/null.
  if (inherited_value(inherited, "SUPPRESS_LOGIN_WAIT") == nullptr)
    variables.emplace_back("SUPPRESS_LOGIN_WAIT", "true");
  // No AUTH_KEY_FILE_PATH: the real child reads only {launcher}/auth_profiles/key.txt
  // (api_utils/auth_utils.py), once; the coordinator is the one key check (docs/real-child.md).
  return variables;
}

Variables launch_variables(const char* const* inherited, const Variables& from_env_file, const ChildPorts& ports,
                           std::string_view tree) {
  Variables overrides = child_variables(inherited);
  overrides.insert(overrides.end(), from_env_file.begin(), from_env_file.end());
  // What the child's unauthenticated /api/ports/kill takes for "its" ports
  // (default 2048: the coordinator's); the launcher's flags already set them.
  overrides.emplace_back("DEFAULT_FASTAPI_PORT", std::to_string(ports.api));
  overrides.emplace_back("DEFAULT_CAMOUFOX_PORT", std::to_string(ports.camoufox));
  overrides.emplace_back(kTreeVariable, tree);
  return overrides;
}

Variables read_profile_env(const Child& child) {
  const fs::path env_path = env_file_for(child.profile);
  std::error_code exists_ec;
  if (!fs::is_regular_file(env_path, exists_ec)) return {};
  std::ifstream in(env_path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const EnvFile env_file = parse_env_file(text);
  for (const auto& error : env_file.errors) spdlog::error("{}: {}", env_path.string(), error);
  for (const auto& [key, value] : env_file.variables) {
    for (const Switch& entry : kSwitches) {
      if (key == entry.name && value != entry.value) spdlog::warn("{} sets {}: {}", env_path.string(), key, entry.why);
    }
  }
  spdlog::info("child {}: {} variable(s) from {}", child.name, env_file.variables.size(), env_path.string());
  return env_file.variables;
}

void warn_about_inherited_variables() {
  for (const Switch& entry : kSwitches) {
    const char* value = ::getenv(std::string(entry.name).c_str());
    if (value != nullptr && entry.value != value) {
      spdlog::warn("{}={} is set in the coordinator's environment and goes to every child: {}", entry.name, value,
                   entry.why);
    }
  }
  for (char** entry = ::environ; *entry != nullptr; ++entry) {
    if (std::string_view(*entry).starts_with("QUOTA_LIMIT_")) {
      spdlog::warn(
          "{} is set in the coordinator's environment: every child answers quota errors for that model "
          "once it has used that many tokens",
          std::string_view(*entry).substr(0, std::string_view(*entry).find('=')));
    }
  }
}

void warn_if_children_check_keys(const fs::path& key_file) {
  std::ifstream in(key_file);
  std::string line;
  std::size_t keys = 0;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) ++keys;
  }
  if (keys > 0) {
    spdlog::warn(
        "{} holds {} key(s): every child checks them itself, so a request the coordinator accepted "
        "can get a 401 from a child. Keep it empty and use --api-keys-file (docs/real-child.md).",
        key_file.string(), keys);
  }
}

std::string resolve_interpreter(const std::string& python, std::string& error) {
  if (python.find('/') == std::string::npos) {
    const auto found = bp::search_path(python);
    if (found.empty()) error = "python interpreter '" + python + "' not found on PATH";
    return found.string();
  }
  std::string path = fs::absolute(python).lexically_normal().string();
  if (::access(path.c_str(), X_OK) != 0) error = "python interpreter " + path + " is not executable";
  return path;
}

fs::path working_copies_folder(const Config& config, std::string_view fleet) {
  return fs::absolute(config.runtime_dir).lexically_normal() / std::string(fleet);
}

std::string prepare_working_copies_folder(const Config& config, const std::string& fleet) {
  // The working copies hold logged-in sessions: a private folder per run.
  std::error_code dir_ec;
  const fs::path runtime = fs::absolute(config.runtime_dir).lexically_normal();
  const bool existed = fs::exists(runtime, dir_ec);
  fs::create_directories(runtime, dir_ec);
  if (dir_ec) return "cannot create runtime folder " + runtime.string() + ": " + dir_ec.message();
  if (!existed) ::chmod(runtime.c_str(), 0700);
  // Folders of earlier runs whose coordinator is gone (killed, and its guard
  // too): their copies were synced while they ran; what is left is stale. A
  // run with this very pid (PID 1 in a container) is gone too.
  for (fs::directory_iterator it(runtime, dir_ec), end; !dir_ec && it != end; it.increment(dir_ec)) {
    const std::string name = it->path().filename().string();
    const pid_t owner = fleet_owner(name);
    const bool gone = owner == ::getpid() || (::kill(owner, 0) != 0 && errno == ESRCH);
    if (owner > 0 && name != fleet && gone) {
      std::error_code remove_ec;
      fs::remove_all(it->path(), remove_ec);
      spdlog::info("removed the working copies of an earlier run ({})", it->path().string());
    }
  }
  const fs::path folder = working_copies_folder(config, fleet);
  fs::create_directories(folder, dir_ec);
  if (dir_ec || ::chmod(folder.c_str(), 0700) != 0) {
    return "cannot create runtime folder " + folder.string() + ": " + (dir_ec ? dir_ec.message() : "chmod failed");
  }
  return {};
}

fs::path child_work_dir(const Config& config, std::string_view name) {
  return fs::absolute(config.runtime_dir).lexically_normal() / "children" / std::string(name);
}

std::string make_private_dir(const fs::path& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return ec.message();
  if (::chmod(folder.c_str(), 0700) != 0) return std::strerror(errno);
  return {};
}

}  // namespace coordinator
