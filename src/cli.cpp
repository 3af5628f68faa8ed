#include "coordinator/cli.hpp"

#include <CLI/CLI.hpp>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "coordinator/config_file.hpp"

namespace coordinator {

namespace {

void add_port(CLI::App& app, const std::string& flag, int& value, const std::string& env, const std::string& help) {
  app.add_option(flag, value, help)->envname(env)->check(CLI::Range(1, kMaxPort))->capture_default_str();
}

// A time setting, written as fractional seconds: checked as text, made a Duration here and nowhere else.
// The default prints as the seconds a double would (10, 0.25), the same text in --help and --print-config.
void add_seconds(CLI::App& app, const std::string& flag, Duration& value, const std::string& help,
                 double minimum = 0.001) {
  const auto set = [&value](const double& seconds) { value = to_duration(seconds); };
  app.add_option_function<double>(flag, set, help)
      ->check(CLI::Range(minimum, 1e7))
      ->type_name("SECONDS")
      ->default_function([&value] {
        std::ostringstream text;
        text << to_seconds(value);
        return text.str();
      })
      ->capture_default_str();
}

// What some options hold until parsing is done: texts that become Config
// fields (or decide what happens) once they are checked.
struct OptionTexts {
  std::string browser_mode = "headless";
  bool no_headless = false;
  std::string max_rss = "0";
  std::string balance = "least-busy";
  std::vector<std::string> upstreams;
  std::vector<std::string> model_aliases;
  std::vector<std::string> webhooks;
  std::string webhook_secret;
  std::string webhook_secret_file;
  std::string config_path;
  bool print_config = false;
  std::string log_format = "text";
  std::string shard;
};

// The groups below are added in the order --help and --print-config list them.

// Where the children come from and run: profiles, launcher, ports, folders, browser.
void add_child_options(CLI::App& app, Config& config, OptionTexts& texts) {
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
  add_seconds(app, "--expiry-warning", config.expiry_warning,
              "Flag a profile whose first cookie expires within this (GET /admin/profiles)");
  app.add_option("--state-file", config.state_file,
                 "State kept across restarts: model cooldowns, usage (default {log-dir}/state.json; none = off)")
      ->type_name("PATH");
  app.add_option("--runtime-dir", config.runtime_dir,
                 "Folder (made 0700) for each child's private working copy of its profile")
      ->envname("COORDINATOR_RUNTIME_DIR")
      ->capture_default_str();
  app.add_option("--browser-mode", texts.browser_mode,
                 "headless, headful (a visible window: the launcher's --debug) or virtual-display (Xvfb)")
      ->envname("COORDINATOR_BROWSER_MODE")
      ->check(CLI::IsMember({"headless", "headful", "virtual-display"}))
      ->capture_default_str();
  app.add_flag("--no-headless", texts.no_headless, "Same as --browser-mode headful");
}

// Time limits for clients, children and stops, and the request size limit.
void add_timeout_options(CLI::App& app, Config& config) {
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
}

void add_supervision_options(CLI::App& app, Config& config, OptionTexts& texts) {
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
  app.add_option("--max-child-rss", texts.max_rss,
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
}

void add_dispatch_options(CLI::App& app, Config& config, OptionTexts& texts) {
  app.add_option("--balance", texts.balance,
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
  add_seconds(app, "--models-interval", config.models_interval,
              "Time between two reads of an idle child's /v1/models (also read when it becomes ready)");
  app.add_option("--model-alias", texts.model_aliases,
                 "Model name FROM in a Responses, Anthropic or Gemini request goes to the children as TO (repeatable)")
      ->type_name("FROM=TO");
  app.add_option("--upstream", texts.upstreams,
                 "Attach mode: route to [NAME=]http://HOST:PORT (repeatable) instead of spawning children")
      ->type_name("URL");
}

void add_operations_options(CLI::App& app, Config& config, OptionTexts& texts) {
  app.add_option("--config", texts.config_path,
                 "TOML file holding any of these options (command line > environment > file > defaults)")
      ->envname("COORDINATOR_CONFIG")
      ->type_name("FILE");
  app.add_flag("--print-config", texts.print_config, "Print the effective configuration and exit");
  app.add_option("--api-keys-file", config.api_keys_file,
                 "Keys (key.txt format) required on /v1/* and /admin/*; re-read on SIGHUP")
      ->envname("COORDINATOR_API_KEYS_FILE")
      ->type_name("FILE");
  app.add_flag("--protect-metrics", config.protect_metrics, "Require an API key on /metrics too");
  app.add_flag("--admin-remote", config.admin_remote, "Allow /admin/* from non-loopback clients");
  app.add_option("--log-format", texts.log_format, "Log lines as text or json")
      ->envname("COORDINATOR_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--max-connections", config.max_connections, "Client connections served at once; more are refused")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
      ->capture_default_str();
  app.add_option("--webhook", texts.webhooks,
                 "Alerts: POST a JSON event to http://HOST[:PORT]/PATH (repeatable): needs_relogin, quota_exhausted, "
                 "child_failed, profile_expiring, recovered")
      ->type_name("URL");
  app.add_option("--webhook-secret", texts.webhook_secret,
                 "Sign each alert: X-Coordinator-Signature: sha256=HMAC-SHA256 of the body (prefer the file: "
                 "a command line shows in ps)")
      ->envname("COORDINATOR_WEBHOOK_SECRET")
      ->type_name("SECRET");
  app.add_option("--webhook-secret-file", texts.webhook_secret_file,
                 "Read the webhook secret from this file (its first line)")
      ->type_name("FILE");
  app.add_option("--shard", texts.shard, "Keep only profiles whose sorted index is K modulo N (scale-out replicas)")
      ->envname("COORDINATOR_SHARD")
      ->type_name("K/N");
}

// Runs CLI11 over argv: an exit request for --help and for what it refuses.
std::optional<ExitRequest> parse_arguments(CLI::App& app, int argc, const char* const* argv) {
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
  return std::nullopt;
}

std::optional<std::string> apply_browser_mode(const OptionTexts& texts, Config& config) {
  if (texts.no_headless && texts.browser_mode == "virtual-display") {
    return "--no-headless (headful) contradicts --browser-mode virtual-display";
  }
  // --no-headless is an alias; "headless" may only be the printed default.
  const std::string mode = texts.no_headless ? "headful" : texts.browser_mode;
  config.browser_mode = mode == "headful"           ? BrowserMode::headful
                        : mode == "virtual-display" ? BrowserMode::virtual_display
                                                    : BrowserMode::headless;
  return std::nullopt;
}

std::optional<std::string> apply_upstreams(const std::vector<std::string>& texts, Config& config) {
  for (const auto& text : texts) {
    auto parsed = parse_upstream(text);
    if (auto* error = std::get_if<std::string>(&parsed)) return "--upstream " + text + ": " + *error;
    const Upstream& upstream = std::get<Upstream>(parsed);
    for (const auto& earlier : config.upstreams) {
      if (earlier.name == upstream.name) return "--upstream name '" + upstream.name + "' is used twice";
    }
    config.upstreams.push_back(upstream);
  }
  return std::nullopt;
}

std::optional<std::string> apply_webhooks(const OptionTexts& texts, Config& config) {
  for (const auto& text : texts.webhooks) {
    if (text.empty()) continue;  // --print-config's `webhook=""`: none
    auto parsed = parse_webhook_url(text);
    if (auto* error = std::get_if<std::string>(&parsed)) return "--webhook " + text + ": " + *error;
    config.webhooks.push_back(std::get<WebhookTarget>(std::move(parsed)));
  }
  if (!texts.webhook_secret.empty() && !texts.webhook_secret_file.empty()) {
    return "--webhook-secret and --webhook-secret-file: give one of them";
  }
  config.webhook_secret = texts.webhook_secret;
  if (!texts.webhook_secret_file.empty()) {
    std::ifstream in(texts.webhook_secret_file, std::ios::binary);
    if (!in) return "--webhook-secret-file " + texts.webhook_secret_file + ": cannot be read";
    std::string secret;
    std::getline(in, secret);
    while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ' || secret.back() == '\t'))
      secret.pop_back();
    if (secret.empty()) return "--webhook-secret-file " + texts.webhook_secret_file + ": the first line is empty";
    config.webhook_secret = std::move(secret);
  }
  return std::nullopt;
}

// Turns the checked texts into Config fields, in the order their errors are reported.
std::optional<std::string> apply_texts(const OptionTexts& texts, Config& config) {
  if (auto error = apply_browser_mode(texts, config)) return error;
  config.json_logs = texts.log_format == "json";
  if (!texts.shard.empty()) {
    const auto shard = parse_shard(texts.shard);
    if (!shard) return "--shard " + texts.shard + ": expected K/N with 0 <= K < N";
    std::tie(config.shard_index, config.shard_count) = *shard;
  }
  config.balance = texts.balance == "round-robin" ? Balance::round_robin : Balance::least_busy;
  const auto rss = parse_byte_size(texts.max_rss);
  if (!rss) return "--max-child-rss: '" + texts.max_rss + "' is not a size";
  config.max_child_rss = *rss;
  for (const std::string& text : texts.model_aliases) {
    if (text.empty()) continue;  // model-alias = "" (as --print-config writes none) maps nothing
    auto alias = parse_model_alias(text);
    if (const auto* error = std::get_if<std::string>(&alias)) return "--model-alias " + text + ": " + *error;
    auto& [from, to] = std::get<std::pair<std::string, std::string>>(alias);
    if (config.model_aliases.contains(from)) return "--model-alias " + from + " is given twice";
    config.model_aliases.emplace(std::move(from), std::move(to));
  }
  if (auto error = apply_webhooks(texts, config)) return error;
  return apply_upstreams(texts.upstreams, config);
}

ExitRequest print_effective_config(const CLI::App& app) {
  // Lines a config file cannot hold (--config itself, --print-config, empty lists) are left out,
  // so the output can be saved and used as a config file.
  std::istringstream all(app.config_to_str(/*default_also=*/true, /*write_description=*/false));
  std::string effective = "# coordinator: effective configuration\n";
  for (std::string line; std::getline(all, line);) {
    if (line.rfind("config=", 0) == 0 || line.rfind("print-config=", 0) == 0 || line.rfind("help=", 0) == 0 ||
        (line.ends_with("=\"\"") && line.rfind("upstream=", 0) == 0)) {
      continue;
    }
    // A secret is never printed: only that one is set.
    if (line.rfind("webhook-secret=", 0) == 0 && line != "webhook-secret=\"\"") {
      effective += "# webhook-secret is set (not shown)\n";
      continue;
    }
    effective += line + "\n";
  }
  return ExitRequest{0, effective};
}

}  // namespace

ParseOutcome parse_command_line(int argc, const char* const* argv) {
  Config config;
  OptionTexts texts;
  CLI::App app{
      "coordinator: runs one AIstudioProxyAPI child per auth profile and serves one "
      "OpenAI-compatible endpoint over them."};
  app.get_formatter()->column_width(36);
  add_child_options(app, config, texts);
  add_timeout_options(app, config);
  add_supervision_options(app, config, texts);
  add_dispatch_options(app, config, texts);
  add_operations_options(app, config, texts);

  if (auto exit = parse_arguments(app, argc, argv)) return *exit;
  if (!texts.config_path.empty()) {
    if (auto error = apply_config_file(app, texts.config_path)) return ExitRequest{2, "coordinator: error: " + *error};
    config.config_file = texts.config_path;
  }
  if (auto error = apply_texts(texts, config)) return ExitRequest{2, "coordinator: error: " + *error};
  if (texts.print_config) return print_effective_config(app);
  return config;
}

}  // namespace coordinator
