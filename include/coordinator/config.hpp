#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace coordinator {

using Seconds = std::chrono::duration<double>;

// Every time setting: the steady clock's own duration, so timers, deadlines and
// expires_after take it as it is. Text (flags, the config file) becomes one once.
using Duration = std::chrono::steady_clock::duration;

inline constexpr int kMaxPort = 65535;

// Converts fractional seconds (a flag, a config-file value, a child's
// Retry-After) into a Duration, to the nearest tick.
Duration to_duration(double seconds);

// A Duration as fractional seconds, for messages and log lines.
double to_seconds(Duration duration);

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
// --model-alias FROM=TO: both names non-empty, without spaces; or why not.
std::variant<std::pair<std::string, std::string>, std::string> parse_model_alias(const std::string& text);

// Where an alert goes (--webhook http://HOST[:PORT][/PATH]).
struct WebhookTarget {
  std::string url;     // as given
  bool tls = false;    // https://: the system's CA store verifies the server
  std::string host;    // without brackets for IPv6
  int port = 80;       // 443 for https:// without a port
  std::string target;  // path and query, "/" when none
  bool operator==(const WebhookTarget&) const = default;
};

// Parses an http:// or https:// webhook URL; returns a one-line reason on failure.
std::variant<WebhookTarget, std::string> parse_webhook_url(const std::string& text);

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
  // A profile whose first cookie expires within this is flagged (GET /admin/profiles).
  Duration expiry_warning = std::chrono::hours{24 * 7};
  // --model-alias: a model name a Responses, Anthropic or Gemini client sends -> the one the children get.
  std::map<std::string, std::string, std::less<>> model_aliases;
  // Model cooldowns and usage across restarts; empty: {log_dir}/state.json, "none": off.
  std::filesystem::path state_file;
  BrowserMode browser_mode = BrowserMode::headless;
  std::filesystem::path runtime_dir = "runtime/coordinator";  // the children's working copies of their profiles

  Duration shutdown_grace = std::chrono::seconds{10};
  Duration ready_timeout = std::chrono::seconds{180};  // a real browser and its page take tens of seconds
  Duration health_interval = std::chrono::seconds{5};
  Duration health_timeout = std::chrono::seconds{5};
  Duration connect_timeout = std::chrono::seconds{5};
  Duration request_timeout = std::chrono::seconds{600};
  Duration stream_idle_timeout = std::chrono::seconds{600};
  Duration sse_heartbeat = std::chrono::seconds{15};
  Duration header_timeout = std::chrono::seconds{10};
  Duration keep_alive_timeout = std::chrono::seconds{75};
  Duration cancel_timeout = std::chrono::seconds{10};
  Duration child_stop_timeout = std::chrono::seconds{30};  // the real child saves cookies and closes its browser first
  Duration client_send_timeout = std::chrono::seconds{60};
  std::uint64_t max_body = 20ull * 1024 * 1024;

  // Supervision.
  Duration unhealthy_restart_after = std::chrono::seconds{60};
  int max_restarts = 5;
  Duration restart_window = std::chrono::seconds{600};
  Duration backoff_reset_after = std::chrono::seconds{300};
  Duration start_stagger = std::chrono::seconds{2};
  Duration stall_timeout = std::chrono::seconds{300};
  std::uint64_t max_child_rss = 0;            // bytes, 0 = off
  Duration max_child_age = Duration::zero();  // 0 = off
  Duration cooldown = std::chrono::seconds{60};
  // After a quota signal (530, an in-stream quota error) without Retry-After.
  Duration quota_cooldown = std::chrono::seconds{3600};
  std::uint64_t eject_after = 5;                   // server errors in a row before a child is ejected; 0 = off
  Duration eject_time = std::chrono::seconds{30};  // first ejection; doubles per ejection in a row, up to 10x
  std::size_t pool_size = 0;                       // 0 = every profile

  // Dispatch.
  Balance balance = Balance::least_busy;
  std::size_t max_inflight_per_child = 1;
  std::size_t max_queue = 1000;
  Duration queue_timeout = std::chrono::seconds{300};
  // Between two reads of a child's /v1/models (and at once when it becomes ready).
  Duration models_interval = std::chrono::seconds{300};

  // Attach mode: route to these instead of spawning children.
  std::vector<Upstream> upstreams;

  // Alerts: a JSON POST per event to each --webhook, signed with the secret when there is one.
  std::vector<WebhookTarget> webhooks;
  std::string webhook_secret;  // from --webhook-secret or --webhook-secret-file; never logged

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
