#include "coordinator/child_launch.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

using namespace coordinator;

namespace {

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

TEST(LaunchVariables, SwitchesThenEnvFileThenPortsThenTheTreeMarker) {
  const char* inherited[] = {"PATH=/bin", nullptr};
  const Variables variables = launch_variables(
      inherited, {{"HTTP_PROXY", "http://p:1"}, {"COORDINATOR_TREE", "forged"}}, {3101, 3201, 9223}, "f/1/2");
  const Variables expected{{"AUTO_ROTATE_AUTH_PROFILE", "false"},
                           {"QUOTA_SOFT_LIMIT", std::string(kOutOfReachTokens)},
                           {"QUOTA_HARD_LIMIT", std::string(kOutOfReachTokens)},
                           {"SUPPRESS_LOGIN_WAIT", "true"},
                           {"HTTP_PROXY", "http://p:1"},
                           {"COORDINATOR_TREE", "forged"},
                           {"DEFAULT_FASTAPI_PORT", "3101"},
                           {"DEFAULT_CAMOUFOX_PORT", "9223"},
                           {"COORDINATOR_TREE", "f/1/2"}};
  EXPECT_EQ(variables, expected);
  // What the child gets: the marker is exact whatever the profile's .env says.
  const auto environment = child_environment(inherited, variables);
  EXPECT_EQ(std::count(environment.begin(), environment.end(), "COORDINATOR_TREE=f/1/2"), 1);
  EXPECT_EQ(std::count(environment.begin(), environment.end(), "COORDINATOR_TREE=forged"), 0);
}

TEST(ChildFolders, UnderTheRuntimeFolder) {
  Config config;
  config.runtime_dir = "/run/coordinator/";
  EXPECT_EQ(working_copies_folder(config, "42-abc"), "/run/coordinator/42-abc");
  EXPECT_EQ(child_work_dir(config, "alpha"), "/run/coordinator/children/alpha");
}
