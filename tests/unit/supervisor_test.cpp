#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "coordinator/cli.hpp"
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

}  // namespace

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
