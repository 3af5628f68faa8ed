#include "coordinator/config.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <tuple>

namespace coordinator {

std::chrono::steady_clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(Seconds(seconds));
}

namespace {

constexpr int kMaxPort = 65535;

void add_port(CLI::App& app, const std::string& flag, int& value, const std::string& env, const std::string& help) {
  app.add_option(flag, value, help)->envname(env)->check(CLI::Range(1, kMaxPort))->capture_default_str();
}

void add_seconds(CLI::App& app, const std::string& flag, double& value, const std::string& help,
                 double minimum = 0.001) {
  app.add_option(flag, value, help)->check(CLI::Range(minimum, 1e7))->type_name("SECONDS")->capture_default_str();
}

}  // namespace

namespace {

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r");
  return std::string(text.substr(first, last - first + 1));
}

// One scalar: a quoted string (no escapes beyond \" and \\), a number or a boolean.
std::optional<std::string> parse_scalar(std::string_view text) {
  const std::string value = trim(text);
  if (value.empty()) return std::nullopt;
  if (value.front() == '"' || value.front() == '\'') {
    if (value.size() < 2 || value.back() != value.front()) return std::nullopt;
    std::string out;
    for (std::size_t i = 1; i + 1 < value.size(); ++i) {
      if (value.front() == '"' && value[i] == '\\' && i + 2 < value.size()) ++i;
      out.push_back(value[i]);
    }
    return out;
  }
  for (char c : value) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' || c == '_')) {
      return std::nullopt;
    }
  }
  return value;
}

// Splits `a, "b, c", d` at top-level commas.
std::vector<std::string_view> split_array(std::string_view inner) {
  std::vector<std::string_view> parts;
  char quote = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < inner.size(); ++i) {
    const char c = inner[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == ',') {
      parts.push_back(inner.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(inner.substr(start));
  return parts;
}

std::string strip_comment(std::string_view line) {
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      return std::string(line.substr(0, i));
    }
  }
  return std::string(line);
}

// Applies the file's values to options that neither the command line nor the
// environment set, so that the precedence is command line > environment > file.
std::optional<std::string> apply_config_file(CLI::App& app, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "--config " + path + ": cannot be read";
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto parsed = parse_config_file(path, text);
  if (auto* error = std::get_if<std::string>(&parsed)) return *error;
  for (const ConfigEntry& entry : std::get<std::vector<ConfigEntry>>(parsed)) {
    const std::string where = path + ":" + std::to_string(entry.line) + ": ";
    CLI::Option* option = app.get_option_no_throw("--" + entry.key);
    if (option == nullptr || entry.key == "config" || entry.key == "print-config" || entry.key == "help") {
      return where + "unknown option '" + entry.key + "'";
    }
    if (option->count() > 0) continue;  // given on the command line
    const std::string env = option->get_envname();
    const char* env_value = env.empty() ? nullptr : std::getenv(env.c_str());
    if (env_value != nullptr && env_value[0] != '\0') continue;  // the environment wins (CLI11 ignores empty ones)
    try {
      option->clear();
      for (const auto& value : entry.values) option->add_result(value);
      option->run_callback();
    } catch (const CLI::Error& error) {
      return where + entry.key + ": " + error.what();
    }
    // Values checked after parsing get their file and line here too.
    for (const auto& value : entry.values) {
      std::string problem;
      if (entry.key == "upstream") {
        const auto parsed = parse_upstream(value);
        if (const auto* error = std::get_if<std::string>(&parsed)) problem = *error;
      } else if (entry.key == "shard" && !value.empty() && !parse_shard(value)) {
        problem = "expected K/N with 0 <= K < N";
      } else if (entry.key == "max-child-rss" && !parse_byte_size(value)) {
        problem = "'" + value + "' is not a size";
      }
      if (!problem.empty()) return where + entry.key + ": " + problem;
    }
  }
  return std::nullopt;
}

}  // namespace

std::variant<std::vector<ConfigEntry>, std::string> parse_config_file(const std::string& path, std::string_view text) {
  std::vector<ConfigEntry> entries;
  int line_number = 0;
  std::istringstream lines{std::string(text)};
  std::string raw;
  while (std::getline(lines, raw)) {
    ++line_number;
    const std::string where = path + ":" + std::to_string(line_number) + ": ";
    const std::string line = trim(strip_comment(raw));
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') return where + "unclosed section header";
      continue;
    }
    const auto equals = line.find('=');
    if (equals == std::string::npos) return where + "expected key = value";
    ConfigEntry entry;
    entry.key = trim(std::string_view(line).substr(0, equals));
    entry.line = line_number;
    if (entry.key.empty() ||
        entry.key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos) {
      return where + "invalid key '" + entry.key + "'";
    }
    std::replace(entry.key.begin(), entry.key.end(), '_', '-');
    const std::string value = trim(std::string_view(line).substr(equals + 1));
    if (!value.empty() && value.front() == '[') {
      if (value.back() != ']') return where + "arrays must close on the same line";
      const std::string inner = trim(std::string_view(value).substr(1, value.size() - 2));
      if (!inner.empty()) {
        for (const auto part : split_array(inner)) {
          if (trim(part).empty()) continue;  // trailing comma
          auto scalar = parse_scalar(part);
          if (!scalar) return where + "bad array element for '" + entry.key + "'";
          entry.values.push_back(*scalar);
        }
      }
    } else {
      auto scalar = parse_scalar(value);
      if (!scalar) return where + "bad value for '" + entry.key + "' (quote strings)";
      entry.values.push_back(*scalar);
    }
    for (const auto& earlier : entries) {
      if (earlier.key == entry.key) return where + "'" + entry.key + "' set twice";
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::optional<std::pair<std::size_t, std::size_t>> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= text.size() || slash > 6 || text.size() - slash > 7) {
    return std::nullopt;
  }
  const std::string k = text.substr(0, slash);
  const std::string n = text.substr(slash + 1);
  if (k.find_first_not_of("0123456789") != std::string::npos ||
      n.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const std::size_t index = std::stoul(k);
  const std::size_t count = std::stoul(n);
  if (count == 0 || index >= count) return std::nullopt;
  return std::make_pair(index, count);
}

ParseOutcome parse_command_line(int argc, const char* const* argv) {
  Config config;
  CLI::App app{
      "coordinator: runs one AIstudioProxyAPI child per auth profile and serves one "
      "OpenAI-compatible endpoint over them."};
  app.get_formatter()->column_width(36);

  app.add_option("--profiles", config.profiles_dir, "Folder of auth profiles (*.json), one child each")
      ->envname("COORDINATOR_PROFILES")
      ->capture_default_str();
  app.add_option("--launcher", config.launcher, "Child launcher script (AIstudioProxyAPI's launch_camoufox.py)")
      ->envname("COORDINATOR_LAUNCHER")
      ->capture_default_str();
  app.add_option("--python", config.python, "Python interpreter that runs the launcher")
      ->envname("COORDINATOR_PYTHON")
      ->capture_default_str();
  app.add_option("--coordinator-host", config.host, "Address the coordinator listens on")
      ->envname("COORDINATOR_HOST")
      ->capture_default_str();
  add_port(app, "--coordinator-port", config.port, "COORDINATOR_PORT", "Port the coordinator listens on");
  add_port(app, "--base-api-port", config.base_api_port, "BASE_API_PORT",
           "API port of child 0 (child i: base + i*step)");
  add_port(app, "--base-stream-port", config.base_stream_port, "BASE_STREAM_PORT", "Stream-proxy port of child 0");
  add_port(app, "--base-camoufox-port", config.base_camoufox_port, "BASE_CAMOUFOX_PORT",
           "Browser debug port of child 0");
  app.add_option("--port-step", config.port_step, "Distance between the ports of consecutive children")
      ->envname("PORT_STEP")
      ->check(CLI::Range(1, kMaxPort))
      ->capture_default_str();
  app.add_option("--log-dir", config.log_dir, "Folder for the per-child logs ({name}.log)")
      ->envname("COORDINATOR_LOG_DIR")
      ->capture_default_str();
  app.add_option("--runtime-dir", config.runtime_dir,
                 "Folder (made 0700) for each child's private working copy of its profile")
      ->envname("COORDINATOR_RUNTIME_DIR")
      ->capture_default_str();
  std::string browser_mode = "headless";
  app.add_option("--browser-mode", browser_mode,
                 "headless, headful (a visible window: the launcher's --debug) or virtual-display (Xvfb)")
      ->envname("COORDINATOR_BROWSER_MODE")
      ->check(CLI::IsMember({"headless", "headful", "virtual-display"}))
      ->capture_default_str();
  bool no_headless = false;
  app.add_flag("--no-headless", no_headless, "Same as --browser-mode headful");

  add_seconds(app, "--shutdown-grace", config.shutdown_grace,
              "On SIGTERM/SIGINT, time in-flight requests get to finish", 0);
  add_seconds(app, "--ready-timeout", config.ready_timeout, "Time a child gets to become ready before it is reported");
  add_seconds(app, "--health-interval", config.health_interval, "Time between health checks of each child");
  add_seconds(app, "--health-timeout", config.health_timeout, "Time a child's /health gets to answer");
  add_seconds(app, "--connect-timeout", config.connect_timeout, "Time to connect to a child");
  add_seconds(app, "--request-timeout", config.request_timeout,
              "Time a child gets to answer a non-streamed request (then 504)");
  add_seconds(app, "--stream-idle-timeout", config.stream_idle_timeout,
              "Longest silence allowed from a child while streaming");
  add_seconds(app, "--sse-heartbeat", config.sse_heartbeat,
              "Send ': keep-alive' to a streaming client after this much child silence (0 = off)", 0);
  add_seconds(app, "--header-timeout", config.header_timeout, "Time a client gets to send a request's headers");
  add_seconds(app, "--keep-alive-timeout", config.keep_alive_timeout, "Idle time before a client connection is closed");
  app.add_option("--max-body", config.max_body, "Largest request body accepted, in bytes (then 413)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40))
      ->capture_default_str();

  add_seconds(app, "--child-stop-timeout", config.child_stop_timeout,
              "Time a child gets between SIGTERM and SIGKILL when stopped");

  // Supervision.
  add_seconds(app, "--unhealthy-restart-after", config.unhealthy_restart_after,
              "Restart a child unhealthy this long (or not ready this long after --ready-timeout)");
  app.add_option("--max-restarts", config.max_restarts,
                 "Restarts allowed within --restart-window before a profile is parked as failed")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  add_seconds(app, "--restart-window", config.restart_window, "Window in which --max-restarts is counted");
  add_seconds(app, "--start-stagger", config.start_stagger, "Minimum time between two child starts (boot and restarts)",
              0);
  add_seconds(app, "--stall-timeout", config.stall_timeout,
              "Cut a request whose child sent nothing for this long, and recycle the child");
  std::string max_rss_text = "0";
  app.add_option("--max-child-rss", max_rss_text,
                 "Recycle a child whose process group uses more resident memory (bytes, K/M/G suffix; 0 = off)")
      ->type_name("SIZE")
      ->capture_default_str();
  add_seconds(app, "--max-child-age", config.max_child_age, "Recycle a child older than this (0 = off)", 0);
  add_seconds(app, "--cooldown", config.cooldown, "Time out of rotation after a 429 without Retry-After");
  add_seconds(app, "--quota-cooldown", config.quota_cooldown,
              "Time out of rotation after a quota signal (530, an in-stream quota error) without Retry-After");
  app.add_option("--eject-after", config.eject_after,
                 "Take a child out of rotation after this many server errors (5xx) in a row (0 = never)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1000000}))
      ->capture_default_str();
  add_seconds(app, "--eject-time", config.eject_time,
              "First ejection's length; doubled for each ejection in a row, up to 10 times this");
  app.add_option("--pool-size", config.pool_size,
                 "Children to run at once; the other profiles wait their turn (0 = every profile)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{100000}))
      ->capture_default_str();

  // Dispatch.
  std::string balance = "least-busy";
  app.add_option("--balance", balance,
                 "least-busy: next ready child with a free slot, else queue; round-robin: next ready child")
      ->check(CLI::IsMember({"least-busy", "round-robin"}))
      ->capture_default_str();
  app.add_option("--max-inflight-per-child", config.max_inflight_per_child, "Requests one child serves at once")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--max-queue", config.max_queue, "Requests allowed to wait for a free child (then 429)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{10000000}))
      ->capture_default_str();
  add_seconds(app, "--queue-timeout", config.queue_timeout, "Longest wait for a free child (then 503)");
  std::vector<std::string> upstream_texts;
  app.add_option("--upstream", upstream_texts,
                 "Attach mode: route to [NAME=]http://HOST:PORT (repeatable) instead of spawning children")
      ->type_name("URL");

  // Operations.
  std::string config_path;
  app.add_option("--config", config_path,
                 "TOML file holding any of these options (command line > environment > file > defaults)")
      ->envname("COORDINATOR_CONFIG")
      ->type_name("FILE");
  bool print_config = false;
  app.add_flag("--print-config", print_config, "Print the effective configuration and exit");
  app.add_option("--api-keys-file", config.api_keys_file,
                 "Keys (key.txt format) required on /v1/* and /admin/*; re-read on SIGHUP")
      ->envname("COORDINATOR_API_KEYS_FILE")
      ->type_name("FILE");
  app.add_flag("--protect-metrics", config.protect_metrics, "Require an API key on /metrics too");
  app.add_flag("--admin-remote", config.admin_remote, "Allow /admin/* from non-loopback clients");
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "Log lines as text or json")
      ->envname("COORDINATOR_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--max-connections", config.max_connections, "Client connections served at once; more are refused")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
      ->capture_default_str();
  std::string shard_text;
  app.add_option("--shard", shard_text, "Keep only profiles whose sorted index is K modulo N (scale-out replicas)")
      ->envname("COORDINATOR_SHARD")
      ->type_name("K/N");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return ExitRequest{0, app.help()};
  } catch (const CLI::CallForAllHelp&) {
    return ExitRequest{0, app.help("", CLI::AppFormatMode::All)};
  } catch (const CLI::ParseError& error) {
    std::string message = error.what();
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    return ExitRequest{2, "coordinator: error: " + message + " (see --help)"};
  }
  if (!config_path.empty()) {
    if (auto error = apply_config_file(app, config_path)) return ExitRequest{2, "coordinator: error: " + *error};
    config.config_file = config_path;
  }
  if (no_headless && browser_mode == "virtual-display") {
    return ExitRequest{2, "coordinator: error: --no-headless (headful) contradicts --browser-mode virtual-display"};
  }
  if (no_headless) browser_mode = "headful";  // an alias; "headless" may only be the printed default
  config.browser_mode = browser_mode == "headful"           ? BrowserMode::headful
                        : browser_mode == "virtual-display" ? BrowserMode::virtual_display
                                                            : BrowserMode::headless;
  config.json_logs = log_format == "json";
  if (!shard_text.empty()) {
    const auto shard = parse_shard(shard_text);
    if (!shard) {
      return ExitRequest{2, "coordinator: error: --shard " + shard_text + ": expected K/N with 0 <= K < N"};
    }
    std::tie(config.shard_index, config.shard_count) = *shard;
  }
  config.balance = balance == "round-robin" ? Balance::round_robin : Balance::least_busy;
  const auto rss = parse_byte_size(max_rss_text);
  if (!rss) return ExitRequest{2, "coordinator: error: --max-child-rss: '" + max_rss_text + "' is not a size"};
  config.max_child_rss = *rss;
  for (const auto& text : upstream_texts) {
    auto parsed = parse_upstream(text);
    if (auto* error = std::get_if<std::string>(&parsed)) {
      return ExitRequest{2, "coordinator: error: --upstream " + text + ": " + *error};
    }
    const Upstream& upstream = std::get<Upstream>(parsed);
    for (const auto& earlier : config.upstreams) {
      if (earlier.name == upstream.name) {
        return ExitRequest{2, "coordinator: error: --upstream name '" + upstream.name + "' is used twice"};
      }
    }
    config.upstreams.push_back(upstream);
  }
  if (print_config) {
    // Lines a config file cannot hold (--config itself, --print-config, empty lists) are left out,
    // so the output can be saved and used as a config file.
    std::istringstream all(app.config_to_str(/*default_also=*/true, /*write_description=*/false));
    std::string effective = "# coordinator: effective configuration\n";
    for (std::string line; std::getline(all, line);) {
      if (line.rfind("config=", 0) == 0 || line.rfind("print-config=", 0) == 0 || line.rfind("help=", 0) == 0 ||
          (line.ends_with("=\"\"") && line.rfind("upstream=", 0) == 0)) {
        continue;
      }
      effective += line + "\n";
    }
    return ExitRequest{0, effective};
  }
  return config;
}

std::variant<Upstream, std::string> parse_upstream(const std::string& text) {
  Upstream upstream;
  std::string url = text;
  const auto equals = text.find('=');
  const auto scheme = text.find("://");
  if (equals != std::string::npos && (scheme == std::string::npos || equals < scheme)) {
    upstream.name = text.substr(0, equals);
    url = text.substr(equals + 1);
    if (upstream.name.empty()) return std::string("empty name before '='");
    for (char c : upstream.name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':')) {
        return std::string("name may hold only letters, digits, '-', '_', '.' and ':'");
      }
    }
  }
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return std::string("must start with http:// (no TLS to children)");
  std::string rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return std::string("must not have a path");
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::string("must be http://HOST:PORT");
  upstream.host = rest.substr(0, colon);
  if (upstream.host.front() == '[' && upstream.host.back() == ']') {
    upstream.host = upstream.host.substr(1, upstream.host.size() - 2);
  }
  if (upstream.host.empty()) return std::string("empty host");
  const std::string port_text = rest.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    return std::string("port must be a number");
  }
  upstream.port = std::stoi(port_text);
  if (upstream.port < 1 || upstream.port > kMaxPort) return std::string("port out of range");
  if (upstream.name.empty()) upstream.name = rest;
  return upstream;
}

std::optional<std::uint64_t> parse_byte_size(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  std::uint64_t value = std::stoull(text.substr(0, digits));
  std::string suffix = text.substr(digits);
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  if (suffix.empty()) return value;
  if (suffix.size() != 1) return std::nullopt;
  int shift = 0;
  switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
    case 'K':
      shift = 10;
      break;
    case 'M':
      shift = 20;
      break;
    case 'G':
      shift = 30;
      break;
    default:
      return std::nullopt;
  }
  if (value > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

ChildPorts assign_ports(const Config& config, std::size_t index) {
  const int offset = static_cast<int>(index) * config.port_step;
  return {config.base_api_port + offset, config.base_stream_port + offset, config.base_camoufox_port + offset};
}

std::optional<std::string> validate_port_layout(const Config& config, std::size_t child_count) {
  if (child_count == 0) return std::nullopt;
  struct Range {
    const char* flag;
    long first;
    long last;
  };
  const long span = static_cast<long>(child_count - 1) * config.port_step;
  const std::array<Range, 3> ranges{{
      {"--base-api-port", config.base_api_port, config.base_api_port + span},
      {"--base-stream-port", config.base_stream_port, config.base_stream_port + span},
      {"--base-camoufox-port", config.base_camoufox_port, config.base_camoufox_port + span},
  }};
  std::ostringstream reason;
  for (const auto& range : ranges) {
    if (range.first < 1 || range.last > kMaxPort) {
      reason << range.flag << " " << range.first << " with " << child_count << " children and step " << config.port_step
             << " needs ports up to " << range.last << ", beyond " << kMaxPort;
      return reason.str();
    }
  }
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    for (std::size_t j = i + 1; j < ranges.size(); ++j) {
      if (ranges[i].first <= ranges[j].last && ranges[j].first <= ranges[i].last) {
        reason << "port ranges overlap: " << ranges[i].flag << " " << ranges[i].first << "-" << ranges[i].last
               << " and " << ranges[j].flag << " " << ranges[j].first << "-" << ranges[j].last << " for " << child_count
               << " children";
        return reason.str();
      }
    }
  }
  for (const auto& range : ranges) {
    if (config.port >= range.first && config.port <= range.last) {
      reason << "--coordinator-port " << config.port << " falls inside the " << range.flag << " range " << range.first
             << "-" << range.last;
      return reason.str();
    }
  }
  return std::nullopt;
}

}  // namespace coordinator
