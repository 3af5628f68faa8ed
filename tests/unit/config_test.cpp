#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "coordinator/config.hpp"

using namespace coordinator;

namespace {

ParseOutcome parse(std::vector<std::string> args) {
  args.insert(args.begin(), "coordinator");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

Config parse_ok(std::vector<std::string> args) {
  auto outcome = parse(std::move(args));
  EXPECT_TRUE(std::holds_alternative<Config>(outcome)) << std::get<ExitRequest>(outcome).message;
  return std::get<Config>(outcome);
}

ExitRequest parse_exit(std::vector<std::string> args) {
  auto outcome = parse(std::move(args));
  EXPECT_TRUE(std::holds_alternative<ExitRequest>(outcome));
  return std::get<ExitRequest>(outcome);
}

}  // namespace

TEST(Config, DefaultsMatchTheOriginalLayout) {
  const Config config = parse_ok({});
  EXPECT_EQ(config.profiles_dir, "auth_profiles/active");
  EXPECT_EQ(config.launcher, "launch_camoufox.py");
  EXPECT_EQ(config.python, "python3");
  EXPECT_EQ(config.host, "0.0.0.0");
  EXPECT_EQ(config.port, 2048);
  EXPECT_EQ(config.base_api_port, 3100);
  EXPECT_EQ(config.base_stream_port, 3200);
  EXPECT_EQ(config.base_camoufox_port, 9222);
  EXPECT_EQ(config.port_step, 1);
  EXPECT_EQ(config.log_dir, "logs/coordinator");
  EXPECT_TRUE(config.headless);
  EXPECT_DOUBLE_EQ(config.shutdown_grace, 10);
  EXPECT_DOUBLE_EQ(config.ready_timeout, 60);
  EXPECT_DOUBLE_EQ(config.health_interval, 5);
  EXPECT_DOUBLE_EQ(config.connect_timeout, 5);
  EXPECT_DOUBLE_EQ(config.request_timeout, 600);
  EXPECT_DOUBLE_EQ(config.stream_idle_timeout, 600);
  EXPECT_DOUBLE_EQ(config.sse_heartbeat, 15);
  EXPECT_EQ(config.max_body, 20u * 1024 * 1024);
}

TEST(Config, FlagsOverrideDefaults) {
  const Config config = parse_ok({"--profiles", "/tmp/p", "--coordinator-port", "9000", "--port-step", "3",
                                  "--no-headless", "--health-interval", "0.2", "--sse-heartbeat", "0"});
  EXPECT_EQ(config.profiles_dir, "/tmp/p");
  EXPECT_EQ(config.port, 9000);
  EXPECT_EQ(config.port_step, 3);
  EXPECT_FALSE(config.headless);
  EXPECT_DOUBLE_EQ(config.health_interval, 0.2);
  EXPECT_DOUBLE_EQ(config.sse_heartbeat, 0);
}

TEST(Config, EnvironmentVariablesAreRead) {
  ::setenv("BASE_API_PORT", "4100", 1);
  ::setenv("COORDINATOR_PROFILES", "/srv/profiles", 1);
  const Config config = parse_ok({});
  ::unsetenv("BASE_API_PORT");
  ::unsetenv("COORDINATOR_PROFILES");
  EXPECT_EQ(config.base_api_port, 4100);
  EXPECT_EQ(config.profiles_dir, "/srv/profiles");
}

TEST(Config, CommandLineBeatsEnvironment) {
  ::setenv("COORDINATOR_PORT", "7000", 1);
  const Config config = parse_ok({"--coordinator-port", "7001"});
  ::unsetenv("COORDINATOR_PORT");
  EXPECT_EQ(config.port, 7001);
}

TEST(Config, RefusesOutOfRangeValuesWithOneLine) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--coordinator-port", "70000"},
                                                                {"--base-api-port", "0"},
                                                                {"--port-step", "0"},
                                                                {"--health-interval", "-1"},
                                                                {"--coordinator-port", "abc"},
                                                                {"--no-such-flag"}}) {
    const ExitRequest exit = parse_exit(args);
    EXPECT_NE(exit.code, 0) << args[0];
    EXPECT_EQ(exit.message.find('\n'), std::string::npos) << exit.message;
    EXPECT_NE(exit.message.find("error"), std::string::npos) << exit.message;
  }
}

TEST(Config, HelpDocumentsEveryFlag) {
  const ExitRequest exit = parse_exit({"--help"});
  EXPECT_EQ(exit.code, 0);
  for (const char* flag : {"--profiles",         "--launcher",           "--python",
                           "--coordinator-host", "--coordinator-port",   "--base-api-port",
                           "--base-stream-port", "--base-camoufox-port", "--port-step",
                           "--log-dir",          "--no-headless",        "--shutdown-grace",
                           "--ready-timeout",    "--health-interval",    "--connect-timeout",
                           "--request-timeout",  "--max-body",           "--stream-idle-timeout",
                           "--sse-heartbeat",    "COORDINATOR_PROFILES", "BASE_API_PORT",
                           "PORT_STEP"}) {
    EXPECT_NE(exit.message.find(flag), std::string::npos) << flag;
  }
}

TEST(Ports, ChildIGetsBasePlusIStep) {
  Config config;
  config.port_step = 2;
  EXPECT_EQ(assign_ports(config, 0), (ChildPorts{3100, 3200, 9222}));
  EXPECT_EQ(assign_ports(config, 3), (ChildPorts{3106, 3206, 9228}));
}

TEST(Ports, DefaultLayoutFitsManyChildren) {
  Config config;
  EXPECT_FALSE(validate_port_layout(config, 1).has_value());
  EXPECT_FALSE(validate_port_layout(config, 100).has_value());
}

TEST(Ports, OverlappingRangesAreRefused) {
  Config config;
  // 3100 + 100 children reaches 3199; 101 children collide with the stream base 3200.
  EXPECT_FALSE(validate_port_layout(config, 100).has_value());
  const auto problem = validate_port_layout(config, 101);
  ASSERT_TRUE(problem.has_value());
  EXPECT_NE(problem->find("overlap"), std::string::npos);
  config.port_step = 10;
  EXPECT_TRUE(validate_port_layout(config, 11).has_value());
}

TEST(Ports, RangeBeyondTheLastPortIsRefused) {
  Config config;
  config.base_camoufox_port = 65530;
  EXPECT_FALSE(validate_port_layout(config, 6).has_value());
  const auto problem = validate_port_layout(config, 7);
  ASSERT_TRUE(problem.has_value());
  EXPECT_NE(problem->find("65535"), std::string::npos);
}

TEST(Ports, CoordinatorPortInsideAChildRangeIsRefused) {
  Config config;
  config.port = 3102;
  EXPECT_FALSE(validate_port_layout(config, 2).has_value());
  EXPECT_TRUE(validate_port_layout(config, 3).has_value());
}
