#include "coordinator/config.hpp"

#include <CLI/CLI.hpp>
#include <array>
#include <cctype>
#include <limits>
#include <sstream>

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
  bool no_headless = false;
  app.add_flag("--no-headless", no_headless, "Start the children's browsers with a visible window");

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
  app.add_option("--pool-size", config.pool_size,
                 "Children to run at once; the other profiles wait their turn (0 = every profile)")
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
      ->capture_default_str();
  add_seconds(app, "--queue-timeout", config.queue_timeout, "Longest wait for a free child (then 503)");
  std::vector<std::string> upstream_texts;
  app.add_option("--upstream", upstream_texts,
                 "Attach mode: route to [NAME=]http://HOST:PORT (repeatable) instead of spawning children")
      ->type_name("URL");

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
  config.headless = !no_headless;
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
