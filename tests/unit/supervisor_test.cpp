#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <variant>
#include <vector>

#include "coordinator/config.hpp"
#include "coordinator/supervisor.hpp"

using namespace coordinator;

namespace {

Config parse(std::vector<const char*> args) {
  args.insert(args.begin(), "coordinator");
  auto outcome = parse_command_line(static_cast<int>(args.size()), args.data());
  if (auto* exit = std::get_if<ExitRequest>(&outcome)) {
    ADD_FAILURE() << exit->message;
    return {};
  }
  return std::get<Config>(outcome);
}

int parse_exit_code(std::vector<const char*> args) {
  args.insert(args.begin(), "coordinator");
  auto outcome = parse_command_line(static_cast<int>(args.size()), args.data());
  const auto* exit = std::get_if<ExitRequest>(&outcome);
  return exit ? exit->code : -1;
}

Child child_on(ChildPorts ports) {
  Child child;
  child.name = "alpha";
  child.profile = "/operator/profiles/alpha.json";
  child.ports = ports;
  return child;
}

std::string value_of(const std::vector<std::pair<std::string, std::string>>& variables, const std::string& name) {
  for (const auto& [key, value] : variables) {
    if (key == name) return value;
  }
  return "(unset)";
}

}  // namespace

TEST(ChildCommand, TheLaunchersFlagsWithTheWorkingCopy) {
  Config config;
  config.launcher = "/opt/aistudio/launch_camoufox.py";
  const auto argv = child_command(config, "/usr/bin/python3", child_on({3100, 3200, 9222}), "/run/c/f/0-1/alpha.json");
  EXPECT_EQ(argv, (std::vector<std::string>{"/usr/bin/python3", "/opt/aistudio/launch_camoufox.py", "--server-port",
                                            "3100", "--stream-port", "3200", "--camoufox-debug-port", "9222",
                                            "--active-auth-json", "/run/c/f/0-1/alpha.json", "--headless"}));
}

TEST(ChildCommand, EachBrowserModeIsTheLaunchersOwnFlag) {
  // launcher/config.py: one of --headless, --debug, --virtual-display (else it asks on stdin).
  for (const auto& [mode, flag] :
       {std::pair{BrowserMode::headless, "--headless"}, std::pair{BrowserMode::headful, "--debug"},
        std::pair{BrowserMode::virtual_display, "--virtual-display"}}) {
    Config config;
    config.browser_mode = mode;
    const auto argv = child_command(config, "python3", child_on({1, 2, 3}), "p.json");
    EXPECT_EQ(argv.back(), flag);
    for (const char* other : {"--headless", "--debug", "--virtual-display"}) {
      if (std::string(other) != flag) {
        EXPECT_EQ(std::count(argv.begin(), argv.end(), other), 0) << other;
      }
    }
  }
}

TEST(BrowserModeOption, DefaultsAliasAndConflicts) {
  EXPECT_EQ(parse({}).browser_mode, BrowserMode::headless);
  EXPECT_EQ(parse({"--browser-mode", "headful"}).browser_mode, BrowserMode::headful);
  EXPECT_EQ(parse({"--browser-mode", "virtual-display"}).browser_mode, BrowserMode::virtual_display);
  EXPECT_EQ(parse({"--no-headless"}).browser_mode, BrowserMode::headful) << "--no-headless stays an alias";
  EXPECT_EQ(parse({"--no-headless", "--browser-mode", "headful"}).browser_mode, BrowserMode::headful);
  EXPECT_EQ(parse_exit_code({"--browser-mode", "visible"}), 2);
  EXPECT_EQ(parse_exit_code({"--no-headless", "--browser-mode", "virtual-display"}), 2);
}

TEST(RuntimeDirOption, DefaultAndFlag) {
  EXPECT_EQ(parse({}).runtime_dir, "runtime/coordinator");
  EXPECT_EQ(parse({"--runtime-dir", "/run/coordinator"}).runtime_dir, "/run/coordinator");
}

TEST(ChildVariables, RotationOffLimitsOutOfReachNoLoginWait) {
  const char* inherited[] = {"PATH=/bin", nullptr};
  const auto variables = child_variables(inherited);
  EXPECT_EQ(value_of(variables, "AUTO_ROTATE_AUTH_PROFILE"), "false");
  EXPECT_EQ(value_of(variables, "QUOTA_SOFT_LIMIT"), kOutOfReachTokens);
  EXPECT_EQ(value_of(variables, "QUOTA_HARD_LIMIT"), kOutOfReachTokens);
  EXPECT_EQ(value_of(variables, "SUPPRESS_LOGIN_WAIT"), "true");
  EXPECT_EQ(value_of(variables, "AUTH_KEY_FILE_PATH"), "(unset)");
  // Out of reach for the child's int() of it, and far beyond any account's real use.
  EXPECT_GE(std::string(kOutOfReachTokens).size(), 16u);
}

TEST(ChildVariables, TheOperatorsOwnSettingIsLeftAlone) {
  const char* inherited[] = {"AUTO_ROTATE_AUTH_PROFILE=true", "QUOTA_SOFT_LIMIT=5", nullptr};
  const auto variables = child_variables(inherited);
  EXPECT_EQ(value_of(variables, "AUTO_ROTATE_AUTH_PROFILE"), "(unset)") << "inherited as the operator set it";
  EXPECT_EQ(value_of(variables, "QUOTA_SOFT_LIMIT"), "(unset)");
  EXPECT_EQ(value_of(variables, "QUOTA_HARD_LIMIT"), kOutOfReachTokens);
  // The real child ignores AUTH_KEY_FILE_PATH (api_utils/auth_utils.py reads its own key.txt).
  EXPECT_EQ(value_of(variables, "AUTH_KEY_FILE_PATH"), "(unset)");
}

TEST(ChildEnvironment, OverridesReplaceAndTheLastOneWins) {
  const char* inherited[] = {"PATH=/bin", "COORDINATOR_TREE=stale", "HOME=/root", nullptr};
  const auto environment =
      child_environment(inherited, {{"COORDINATOR_TREE", "f/0/1"}, {"X", "1"}, {"X", "2"}, {"HOME", "/h"}});
  EXPECT_EQ(environment, (std::vector<std::string>{"PATH=/bin", "COORDINATOR_TREE=f/0/1", "X=2", "HOME=/h"}));
}

TEST(LoggedOutLine, TheRealChildsWords) {
  // browser_utils/initialization/core.py, as logged by the launcher (a logger prefix, a traceback line).
  EXPECT_TRUE(child_reports_logged_out("Auth failed in headless mode, auth file update required."));
  EXPECT_TRUE(child_reports_logged_out(
      "2025-01-01 10:00:00 ERROR [init] RuntimeError: Auth failed in headless mode, auth file update required."));
  EXPECT_TRUE(child_reports_logged_out(
      "RuntimeError: Failed to detect AI Studio URL after login prompt: EOF when reading a line"));
  EXPECT_FALSE(child_reports_logged_out("Auth failed"));
  EXPECT_FALSE(child_reports_logged_out("Detected redirect to login page"));
  EXPECT_FALSE(child_reports_logged_out(""));
}
