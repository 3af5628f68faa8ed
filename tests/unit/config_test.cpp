#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "coordinator/cli.hpp"
#include "coordinator/config.hpp"
#include "coordinator/config_file.hpp"
#include "parse_args.hpp"

using namespace coordinator;
using namespace std::chrono_literals;

namespace {

using coordinator::cli_test::parse;

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
  EXPECT_EQ(config.browser_mode, BrowserMode::headless);
  EXPECT_EQ(config.runtime_dir, "runtime/coordinator");
  EXPECT_EQ(config.shutdown_grace, 10s);
  EXPECT_EQ(config.ready_timeout, 180s);
  EXPECT_EQ(config.child_stop_timeout, 30s);
  EXPECT_EQ(config.quota_cooldown, 3600s);
  EXPECT_GT(config.request_timeout, 420s);  // the real child answers a slow request for up to 420 s
  EXPECT_EQ(config.health_interval, 5s);
  EXPECT_EQ(config.connect_timeout, 5s);
  EXPECT_EQ(config.request_timeout, 600s);
  EXPECT_EQ(config.stream_idle_timeout, 600s);
  EXPECT_EQ(config.sse_heartbeat, 15s);
  EXPECT_EQ(config.max_body, 20u * 1024 * 1024);
}

TEST(Config, FlagsOverrideDefaults) {
  const Config config = parse_ok({"--profiles", "/tmp/p", "--coordinator-port", "9000", "--port-step", "3",
                                  "--no-headless", "--health-interval", "0.2", "--sse-heartbeat", "0"});
  EXPECT_EQ(config.profiles_dir, "/tmp/p");
  EXPECT_EQ(config.port, 9000);
  EXPECT_EQ(config.port_step, 3);
  EXPECT_EQ(config.browser_mode, BrowserMode::headful);
  EXPECT_EQ(config.health_interval, 200ms);
  EXPECT_EQ(config.sse_heartbeat, Duration::zero());
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

namespace {

Upstream upstream_ok(const std::string& text) {
  auto parsed = parse_upstream(text);
  EXPECT_TRUE(std::holds_alternative<Upstream>(parsed)) << text << ": " << std::get<std::string>(parsed);
  return std::holds_alternative<Upstream>(parsed) ? std::get<Upstream>(parsed) : Upstream{};
}

std::string upstream_error(const std::string& text) {
  auto parsed = parse_upstream(text);
  EXPECT_TRUE(std::holds_alternative<std::string>(parsed)) << text << " was accepted";
  return std::holds_alternative<std::string>(parsed) ? std::get<std::string>(parsed) : std::string{};
}

}  // namespace

TEST(Upstream, NamedUpstream) {
  EXPECT_EQ(upstream_ok("a=http://127.0.0.1:3100"), (Upstream{"a", "127.0.0.1", 3100}));
  EXPECT_EQ(upstream_ok("child-1_x.y:z=http://localhost:1/"), (Upstream{"child-1_x.y:z", "localhost", 1}));
}

TEST(Upstream, UnnamedUpstreamIsNamedByHostAndPort) {
  EXPECT_EQ(upstream_ok("http://host:80/"), (Upstream{"host:80", "host", 80}));
  EXPECT_EQ(upstream_ok("http://10.0.0.7:65535"), (Upstream{"10.0.0.7:65535", "10.0.0.7", 65535}));
}

TEST(Upstream, BracketedIpv6Host) {
  EXPECT_EQ(upstream_ok("http://[::1]:3100"), (Upstream{"[::1]:3100", "::1", 3100}));
  EXPECT_EQ(upstream_ok("v6=http://[fe80::1]:8080/"), (Upstream{"v6", "fe80::1", 8080}));
}

TEST(Upstream, OnlyPlainHttp) {
  EXPECT_NE(upstream_error("https://host:443").find("http://"), std::string::npos);
  EXPECT_NE(upstream_error("a=https://host:443").find("http://"), std::string::npos);
  EXPECT_NE(upstream_error("host:80").find("http://"), std::string::npos);
  EXPECT_FALSE(upstream_error("").empty());
}

TEST(Upstream, PortIsRequired) {
  EXPECT_NE(upstream_error("http://host").find("HOST:PORT"), std::string::npos);
  EXPECT_NE(upstream_error("http://host/").find("HOST:PORT"), std::string::npos);
  EXPECT_NE(upstream_error("http://:80").find("HOST:PORT"), std::string::npos);
  EXPECT_NE(upstream_error("http://host:").find("port"), std::string::npos);
  EXPECT_NE(upstream_error("http://host:8o").find("port"), std::string::npos);
  EXPECT_NE(upstream_error("http://host:-1").find("port"), std::string::npos);
  EXPECT_FALSE(upstream_error("http://[::1]").empty());
}

TEST(Upstream, PathIsRefused) {
  EXPECT_NE(upstream_error("http://host:80/v1").find("path"), std::string::npos);
  EXPECT_NE(upstream_error("http://host:80//").find("path"), std::string::npos);
}

TEST(Upstream, PortOutOfRange) {
  EXPECT_NE(upstream_error("http://host:0").find("range"), std::string::npos);
  EXPECT_NE(upstream_error("http://host:70000").find("range"), std::string::npos);
  EXPECT_NE(upstream_error("http://host:65536").find("range"), std::string::npos);
  EXPECT_FALSE(upstream_error("http://host:123456").empty());
}

TEST(Upstream, BadNames) {
  EXPECT_NE(upstream_error("=http://host:80").find("empty name"), std::string::npos);
  for (const char* text :
       {"a b=http://host:80", "a/b=http://host:80", "a$=http://host:80", "ü=http://host:80", "a\tb=http://host:80"}) {
    EXPECT_NE(upstream_error(text).find("name may hold only"), std::string::npos) << text;
  }
}

TEST(Upstream, EmptyBracketedHostIsRefused) {
  // "[]" leaves no host at all; it must not become Upstream{host = ""}.
  const auto parsed = parse_upstream("http://[]:80");
  ASSERT_TRUE(std::holds_alternative<std::string>(parsed)) << "accepted with host '" << std::get<Upstream>(parsed).host
                                                           << "' and name '" << std::get<Upstream>(parsed).name << "'";
}

TEST(ByteSize, PlainNumbers) {
  EXPECT_EQ(parse_byte_size("0"), 0u);
  EXPECT_EQ(parse_byte_size("512"), 512u);
  EXPECT_EQ(parse_byte_size("512B"), 512u);
}

TEST(ByteSize, PowersOf1024Suffixes) {
  EXPECT_EQ(parse_byte_size("1k"), 1024u);
  EXPECT_EQ(parse_byte_size("1K"), 1024u);
  EXPECT_EQ(parse_byte_size("800M"), 800ull * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("2G"), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("10MB"), 10ull * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("3gb"), 3ull * 1024 * 1024 * 1024);
}

TEST(ByteSize, Refused) {
  for (const char* text : {"", "abc", "M", "1X", "1T", "-1", " 1", "1 M", "1.5G", "1KiB", "1MBB", "0x10"}) {
    EXPECT_FALSE(parse_byte_size(text).has_value()) << "'" << text << "'";
  }
}

TEST(ByteSize, OverflowIsRefused) {
  // 99999999999 GiB is beyond 2^64 bytes: refuse it rather than wrap around.
  EXPECT_EQ(parse_byte_size("16777215G"), 16777215ull << 30);
  EXPECT_EQ(parse_byte_size("99999999999G"), std::nullopt);
}

TEST(Config, DispatchAndSupervisionDefaults) {
  const Config config = parse_ok({});
  EXPECT_EQ(config.balance, Balance::least_busy);
  EXPECT_TRUE(config.upstreams.empty());
  EXPECT_EQ(config.max_child_rss, 0u);
  EXPECT_EQ(config.pool_size, 0u);
  EXPECT_EQ(config.max_inflight_per_child, 1u);
  EXPECT_EQ(config.max_queue, 1000u);
  EXPECT_EQ(config.start_stagger, 2s);
}

TEST(Config, BalanceFlag) {
  EXPECT_EQ(parse_ok({"--balance", "round-robin"}).balance, Balance::round_robin);
  EXPECT_EQ(parse_ok({"--balance", "least-busy"}).balance, Balance::least_busy);
  const ExitRequest exit = parse_exit({"--balance", "random"});
  EXPECT_EQ(exit.code, 2);
  EXPECT_NE(exit.message.find("error"), std::string::npos) << exit.message;
  EXPECT_EQ(exit.message.find('\n'), std::string::npos) << exit.message;
}

TEST(Config, UpstreamFlagIsRepeatable) {
  const Config config = parse_ok({"--upstream", "a=http://127.0.0.1:3100", "--upstream", "http://127.0.0.1:3101/"});
  ASSERT_EQ(config.upstreams.size(), 2u);
  EXPECT_EQ(config.upstreams[0], (Upstream{"a", "127.0.0.1", 3100}));
  EXPECT_EQ(config.upstreams[1], (Upstream{"127.0.0.1:3101", "127.0.0.1", 3101}));
}

TEST(Config, UpstreamNameUsedTwiceIsRefused) {
  const ExitRequest named = parse_exit({"--upstream", "a=http://h:1", "--upstream", "a=http://h:2"});
  EXPECT_EQ(named.code, 2);
  EXPECT_NE(named.message.find("'a' is used twice"), std::string::npos) << named.message;
  const ExitRequest unnamed = parse_exit({"--upstream", "http://h:1", "--upstream", "http://h:1/"});
  EXPECT_EQ(unnamed.code, 2);
  EXPECT_NE(unnamed.message.find("used twice"), std::string::npos) << unnamed.message;
}

TEST(Config, BadUpstreamIsRefusedWithItsReason) {
  const ExitRequest exit = parse_exit({"--upstream", "https://h:1"});
  EXPECT_EQ(exit.code, 2);
  EXPECT_NE(exit.message.find("--upstream https://h:1"), std::string::npos) << exit.message;
  EXPECT_NE(exit.message.find("http://"), std::string::npos) << exit.message;
  EXPECT_EQ(exit.message.find('\n'), std::string::npos) << exit.message;
}

TEST(Config, MaxChildRssTakesASize) {
  EXPECT_EQ(parse_ok({"--max-child-rss", "1G"}).max_child_rss, 1ull << 30);
  EXPECT_EQ(parse_ok({"--max-child-rss", "800M"}).max_child_rss, 800ull << 20);
  EXPECT_EQ(parse_ok({"--max-child-rss", "0"}).max_child_rss, 0u);
  const ExitRequest exit = parse_exit({"--max-child-rss", "lots"});
  EXPECT_EQ(exit.code, 2);
  EXPECT_NE(exit.message.find("--max-child-rss"), std::string::npos) << exit.message;
}

TEST(Config, PoolSize) {
  EXPECT_EQ(parse_ok({"--pool-size", "3"}).pool_size, 3u);
  EXPECT_EQ(parse_ok({"--pool-size", "0"}).pool_size, 0u);
  EXPECT_NE(parse_exit({"--pool-size", "many"}).code, 0);
}

TEST(Config, MaxInflightPerChildMustBePositive) {
  EXPECT_EQ(parse_ok({"--max-inflight-per-child", "4"}).max_inflight_per_child, 4u);
  const ExitRequest exit = parse_exit({"--max-inflight-per-child", "0"});
  EXPECT_EQ(exit.code, 2);
  EXPECT_NE(exit.message.find("error"), std::string::npos) << exit.message;
}

TEST(Config, StartStaggerMayBeZero) {
  EXPECT_EQ(parse_ok({"--start-stagger", "0"}).start_stagger, Duration::zero());
  EXPECT_EQ(parse_ok({"--start-stagger", "0.5"}).start_stagger, 500ms);
  EXPECT_NE(parse_exit({"--start-stagger", "-1"}).code, 0);
}

TEST(Config, HelpDocumentsDispatchAndSupervisionFlags) {
  const ExitRequest exit = parse_exit({"--help"});
  EXPECT_EQ(exit.code, 0);
  for (const char* flag : {"--balance", "--upstream", "--max-child-rss", "--pool-size", "--max-inflight-per-child",
                           "--max-queue", "--queue-timeout", "--start-stagger", "--max-restarts", "--restart-window",
                           "--cooldown", "--max-child-age", "--stall-timeout", "--unhealthy-restart-after"}) {
    EXPECT_NE(exit.message.find(flag), std::string::npos) << flag;
  }
}

// ---------------------------------------------------------------------------
// Time settings: written as fractional seconds, held as one Duration type.

namespace {

// A config file for one test, removed when the test ends.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    char pattern[] = "/tmp/coordinator-config-test-XXXXXX";
    const int fd = ::mkstemp(pattern);
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
    path_ = pattern;
    std::ofstream(path_) << text;
  }
  ~ConfigFile() { std::remove(path_.c_str()); }
  ConfigFile(const ConfigFile&) = delete;
  ConfigFile& operator=(const ConfigFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string help_line(const std::string& help, const std::string& flag) {
  const auto at = help.find("  " + flag + " ");
  if (at == std::string::npos) return {};
  return help.substr(at, help.find('\n', at) - at);
}

}  // namespace

TEST(Durations, FractionalSecondsBecomeDurationsToTheNearestTick) {
  const Config config = parse_ok({"--health-interval", "0.2", "--connect-timeout", "1.001", "--request-timeout", "2.5",
                                  "--health-timeout", "0.0015", "--queue-timeout", "1e3"});
  EXPECT_EQ(config.health_interval, 200ms);
  EXPECT_EQ(config.connect_timeout, 1001ms);  // 1.001 * 1e9 is 1000999999.9...: rounded, not truncated
  EXPECT_EQ(config.request_timeout, 2500ms);
  EXPECT_EQ(config.health_timeout, 1500us);
  EXPECT_EQ(config.queue_timeout, 1000s);
}

TEST(Durations, ConversionBothWays) {
  EXPECT_EQ(to_duration(0), Duration::zero());
  EXPECT_EQ(to_duration(0.25), 250ms);
  EXPECT_EQ(to_duration(1.001), 1001ms);
  EXPECT_EQ(to_duration(3600), 1h);
  EXPECT_DOUBLE_EQ(to_seconds(2500ms), 2.5);
  EXPECT_DOUBLE_EQ(to_seconds(Duration::zero()), 0);
  EXPECT_DOUBLE_EQ(to_seconds(to_duration(0.2)), 0.2);
}

TEST(Durations, ZeroTurnsOffWhatZeroMayTurnOff) {
  const Config config =
      parse_ok({"--sse-heartbeat", "0", "--max-child-age", "0", "--shutdown-grace", "0", "--start-stagger", "0"});
  EXPECT_EQ(config.sse_heartbeat, Duration::zero());
  EXPECT_EQ(config.max_child_age, Duration::zero());
  EXPECT_EQ(config.shutdown_grace, Duration::zero());
  EXPECT_EQ(config.start_stagger, Duration::zero());
  EXPECT_EQ(parse_ok({}).max_child_age, Duration::zero()) << "off by default";
  EXPECT_EQ(parse_ok({"--max-child-age", "86400.5"}).max_child_age, 86400s + 500ms);
}

TEST(Durations, BadValuesAreRefusedNamingTheFlagAndTheRange) {
  struct Case {
    const char* flag;
    const char* value;
    const char* says;
  };
  for (const Case& c :
       {Case{"--health-interval", "0", "Value 0 not in range 0.001000 to 10000000.000000"},
        Case{"--health-interval", "-1", "Value -1 not in range 0.001000 to 10000000.000000"},
        Case{"--sse-heartbeat", "-0.5", "Value -0.5 not in range 0.000000 to 10000000.000000"},
        Case{"--max-child-age", "-3", "Value -3 not in range 0.000000"},
        Case{"--cooldown", "1e8", "Value 1e8 not in range"}, Case{"--request-timeout", "soon", "soon"}}) {
    const ExitRequest exit = parse_exit({c.flag, c.value});
    EXPECT_EQ(exit.code, 2) << c.flag << " " << c.value;
    EXPECT_EQ(exit.message.rfind("coordinator: error: " + std::string(c.flag), 0), 0u) << exit.message;
    EXPECT_NE(exit.message.find(c.says), std::string::npos) << exit.message;
    EXPECT_EQ(exit.message.find('\n'), std::string::npos) << exit.message;
  }
}

TEST(Durations, ConfigFileValuesAreSecondsToo) {
  const ConfigFile file("health-interval = 0.25\nsse_heartbeat = 0\nstall-timeout = 90\n");
  const Config config = parse_ok({"--config", file.path()});
  EXPECT_EQ(config.health_interval, 250ms);
  EXPECT_EQ(config.sse_heartbeat, Duration::zero());
  EXPECT_EQ(config.stall_timeout, 90s);
  EXPECT_EQ(parse_ok({"--config", file.path(), "--health-interval", "2"}).health_interval, 2s) << "flag over file";
}

TEST(Durations, ANegativeValueInTheConfigFileIsRefusedWithItsLine) {
  const ConfigFile file("# timeouts\nconnect-timeout = -2\n");
  const ExitRequest exit = parse_exit({"--config", file.path()});
  EXPECT_EQ(exit.code, 2);
  EXPECT_NE(exit.message.find(file.path() + ":2: connect-timeout: "), std::string::npos) << exit.message;
  EXPECT_NE(exit.message.find("Value -2 not in range 0.001000"), std::string::npos) << exit.message;
}

TEST(Durations, HelpAndPrintConfigShowSeconds) {
  const std::string help = parse_exit({"--help"}).message;
  EXPECT_NE(help_line(help, "--health-interval").find("SECONDS:FLOAT in [0.001 - 1e+07]=5"), std::string::npos)
      << help_line(help, "--health-interval");
  EXPECT_NE(help_line(help, "--sse-heartbeat").find("[0 - 1e+07]=15"), std::string::npos);
  EXPECT_NE(help_line(help, "--quota-cooldown").find("=3600"), std::string::npos);
  EXPECT_NE(help_line(help, "--max-child-age").find("=0"), std::string::npos);

  const std::string defaults = parse_exit({"--print-config"}).message;
  for (const char* line : {"\nhealth-interval=5\n", "\nready-timeout=180\n", "\nsse-heartbeat=15\n",
                           "\nmax-child-age=0\n", "\nstart-stagger=2\n", "\nkeep-alive-timeout=75\n"}) {
    EXPECT_NE(defaults.find(line), std::string::npos) << line;
  }
  const std::string given = parse_exit({"--health-interval", "0.2", "--print-config"}).message;
  EXPECT_NE(given.find("\nhealth-interval=0.2\n"), std::string::npos) << given;
}

TEST(Config, ModelsInterval) {
  EXPECT_EQ(parse_ok({}).models_interval, std::chrono::seconds{300});
  EXPECT_EQ(parse_ok({"--models-interval", "0.5"}).models_interval, std::chrono::milliseconds{500});
  for (const char* bad : {"0", "-1", "abc"}) {
    const ExitRequest exit = parse_exit({"--models-interval", bad});
    EXPECT_EQ(exit.code, 2) << bad;
    EXPECT_NE(exit.message.find("models-interval"), std::string::npos) << exit.message;
  }
  EXPECT_NE(parse_exit({"--help"}).message.find("--models-interval"), std::string::npos);
}

TEST(Config, ModelsIntervalFromAConfigFile) {
  const std::string path = ::testing::TempDir() + "models_interval.toml";
  {
    std::ofstream out(path);
    out << "models-interval = 42\n";
  }
  EXPECT_EQ(parse_ok({"--config", path}).models_interval, std::chrono::seconds{42});
  // The command line still wins over the file.
  EXPECT_EQ(parse_ok({"--config", path, "--models-interval", "7"}).models_interval, std::chrono::seconds{7});
  {
    std::ofstream out(path);
    out << "models_interval = 0\n";
  }
  const ExitRequest exit = parse_exit({"--config", path});
  EXPECT_EQ(exit.code, 2);
  EXPECT_NE(exit.message.find("models-interval"), std::string::npos) << exit.message;
  std::remove(path.c_str());
}
