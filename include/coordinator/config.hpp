#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace coordinator {

using Seconds = std::chrono::duration<double>;

inline constexpr int kMaxPort = 65535;

// Converts fractional seconds from the command line into a steady-clock duration.
std::chrono::steady_clock::duration to_duration(double seconds);

enum class Balance { least_busy, round_robin };

// How the children's browsers run: the launcher's --headless, --debug (a
// visible window) or --virtual-display (a headless browser in Xvfb).
enum class BrowserMode { headless, headful, virtual_display };

// A child the coordinator did not spawn (--upstream [NAME=]http://HOST:PORT).
struct Upstream {
  std::string name;
  std::string host;
  int port = 0;
  bool operator==(const Upstream&) const = default;
};

// Parses `[NAME=]http://HOST:PORT[/]`; returns a one-line reason on failure.
std::variant<Upstream, std::string> parse_upstream(const std::string& text);

// Parses a byte size with an optional K/M/G suffix (powers of 1024).
std::optional<std::uint64_t> parse_byte_size(const std::string& text);

// One validated, immutable set of settings, made once at start.
struct Config {
  std::filesystem::path profiles_dir = "auth_profiles/active";
  std::string launcher = "launch_camoufox.py";
  std::string python = "python3";
  std::string host = "0.0.0.0";
  int port = 2048;
  int base_api_port = 3100;
  int base_stream_port = 3200;
  int base_camoufox_port = 9222;
  int port_step = 1;
  std::filesystem::path log_dir = "logs/coordinator";
  BrowserMode browser_mode = BrowserMode::headless;
  std::filesystem::path runtime_dir = "runtime/coordinator";  // the children's working copies of their profiles

  double shutdown_grace = 10;
  double ready_timeout = 180;  // a real browser and its page take tens of seconds
  double health_interval = 5;
  double health_timeout = 5;
  double connect_timeout = 5;
  double request_timeout = 600;
  double stream_idle_timeout = 600;
  double sse_heartbeat = 15;
  double header_timeout = 10;
  double keep_alive_timeout = 75;
  double cancel_timeout = 10;
  double child_stop_timeout = 30;  // the real child saves cookies and closes its browser first
  double client_send_timeout = 60;
  std::uint64_t max_body = 20ull * 1024 * 1024;

  // Supervision.
  double unhealthy_restart_after = 60;
  int max_restarts = 5;
  double restart_window = 600;
  double backoff_reset_after = 300;
  double start_stagger = 2;
  double stall_timeout = 300;
  std::uint64_t max_child_rss = 0;  // bytes, 0 = off
  double max_child_age = 0;         // seconds, 0 = off
  double cooldown = 60;
  double quota_cooldown = 3600;   // after a quota signal (530, an in-stream quota error) without Retry-After
  std::uint64_t eject_after = 5;  // server errors in a row before a child is ejected; 0 = off
  double eject_time = 30;         // first ejection; doubles per ejection in a row, up to 10x
  std::size_t pool_size = 0;      // 0 = every profile

  // Dispatch.
  Balance balance = Balance::least_busy;
  std::size_t max_inflight_per_child = 1;
  std::size_t max_queue = 1000;
  double queue_timeout = 300;
  double models_interval = 300;  // between two reads of a child's /v1/models (and at once when it becomes ready)

  // Attach mode: route to these instead of spawning children.
  std::vector<Upstream> upstreams;

  // Operations.
  std::filesystem::path config_file;    // --config, for the record
  std::filesystem::path api_keys_file;  // empty: no keys required
  bool protect_metrics = false;
  bool admin_remote = false;
  bool json_logs = false;
  std::size_t max_connections = 10000;
  std::size_t shard_index = 0;  // keep profiles whose sorted index % shard_count == shard_index
  std::size_t shard_count = 1;
};

// Parses `--shard K/N` (0 <= K < N).
std::optional<std::pair<std::size_t, std::size_t>> parse_shard(const std::string& text);

// The three ports of child `index`.
struct ChildPorts {
  int api = 0;
  int stream = 0;
  int camoufox = 0;
  bool operator==(const ChildPorts&) const = default;
};

ChildPorts assign_ports(const Config& config, std::size_t index);

// Checks that `child_count` children fit: every port in 1..65535, the three
// ranges disjoint, and the coordinator port outside them. Returns a one-line
// reason when they do not.
std::optional<std::string> validate_port_layout(const Config& config, std::size_t child_count);

}  // namespace coordinator
