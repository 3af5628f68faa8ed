#include "coordinator/config.hpp"

#include <CLI/CLI.hpp>
#include <array>
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
  return config;
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
