#include "coordinator/app.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <variant>

#include <unistd.h>

#include "coordinator/alert_sender.hpp"
#include "coordinator/api_keys.hpp"
#include "coordinator/asio.hpp"
#include "coordinator/cli.hpp"
#include "coordinator/cooldown_timers.hpp"
#include "coordinator/dispatcher.hpp"
#include "coordinator/fleet_watch.hpp"
#include "coordinator/health_checker.hpp"
#include "coordinator/http_server.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/log_sink.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/model_learner.hpp"
#include "coordinator/orphan_guard.hpp"
#include "coordinator/orphan_reaper.hpp"
#include "coordinator/profile_admin.hpp"
#include "coordinator/profile_facts_cache.hpp"
#include "coordinator/profiles.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/sd_notify.hpp"
#include "coordinator/state_keeper.hpp"
#include "coordinator/supervisor.hpp"
#include "coordinator/upstream.hpp"
#include "coordinator/usage.hpp"

namespace coordinator {

namespace {

// Every socket, timer and signal set is used on the one I/O thread only, so
// the reactor needs no locks (they were 3% of a proxied request). The
// scheduler keeps its lock: the resolver's thread posts completions to it.
constexpr int kOneThreadReactor =
    static_cast<int>(BOOST_ASIO_CONCURRENCY_HINT_ID | BOOST_ASIO_CONCURRENCY_HINT_LOCKING_SCHEDULER);

constexpr std::size_t kIdleConnectionsPerChild = 16;
// Children (uvicorn) close idle keep-alive connections after 5 s.
constexpr auto kMaxIdleAge = std::chrono::seconds(4);

// Cookies are a logged-in session: a profile others can read deserves a warning.
void warn_about_open_permissions(const std::vector<Profile>& profiles) {
  for (const auto& profile : profiles) {
    std::error_code ec;
    const auto permissions = std::filesystem::status(profile.path, ec).permissions();
    using std::filesystem::perms;
    if (!ec && (permissions & (perms::group_read | perms::others_read)) != perms::none) {
      spdlog::warn("profile {} is readable by group or others; chmod 600 it", profile.path.string());
    }
  }
}

int fail(const std::string& message) {
  spdlog::error("{}", message);
  return 1;
}

// A child's API port must be free before the child is started.
std::string check_port_free(int port) {
  if (port_is_free(port)) return {};
  return "child API port " + std::to_string(port) + " is not free (in use by another process)";
}

Child make_child(const Config& config, std::string name, std::filesystem::path profile, ChildPorts ports) {
  Child child;
  child.name = std::move(name);
  child.profile = std::move(profile);
  child.ports = ports;
  child.max_in_flight = config.max_inflight_per_child;
  child.state_since = Clock::now();
  return child;
}

// The profiles this replica runs: discovery, minus other shards' profiles.
ProfileDiscovery discover_profiles_for(const Config& config) {
  ProfileDiscovery discovery = discover_profiles(config.profiles_dir);
  for (const auto& skipped : discovery.skipped) {
    spdlog::error("skipping profile {}: {}", skipped.path.string(), skipped.reason);
  }
  warn_about_open_permissions(discovery.profiles);
  if (config.shard_count > 1 && discovery.error.empty()) {
    std::vector<Profile> kept;
    for (std::size_t i = 0; i < discovery.profiles.size(); ++i) {
      if (i % config.shard_count == config.shard_index) kept.push_back(discovery.profiles[i]);
    }
    spdlog::info("shard {}/{}: {} of {} profiles", config.shard_index, config.shard_count, kept.size(),
                 discovery.profiles.size());
    discovery.profiles = std::move(kept);
    if (discovery.profiles.empty())
      discovery.error =
          "no profile falls in shard " + std::to_string(config.shard_index) + "/" + std::to_string(config.shard_count);
  }
  return discovery;
}

// The children this run starts with, and the profiles waiting for a slot.
struct Fleet {
  std::vector<Child> children;
  std::deque<Profile> waiting;
};

// Attach mode: one child per --upstream, none spawned.
Fleet attached_fleet(const Config& config) {
  Fleet fleet;
  for (const Upstream& upstream : config.upstreams) {
    Child child = make_child(config, upstream.name, {}, ChildPorts{upstream.port, 0, 0});
    child.host = upstream.host;
    child.attached = true;
    fleet.children.push_back(std::move(child));
  }
  return fleet;
}

// Spawn mode: the discovered profiles fill the slots (--pool-size); the rest wait.
std::variant<Fleet, std::string> spawned_fleet(const Config& config) {
  const ProfileDiscovery discovery = discover_profiles_for(config);
  if (!discovery.error.empty()) return discovery.error;
  const std::size_t slots =
      config.pool_size == 0 ? discovery.profiles.size() : std::min(config.pool_size, discovery.profiles.size());
  if (auto problem = validate_port_layout(config, slots)) return *problem;
  Fleet fleet;
  for (std::size_t i = 0; i < discovery.profiles.size(); ++i) {
    const Profile& profile = discovery.profiles[i];
    if (i < slots) {
      fleet.children.push_back(make_child(config, profile.name, profile.path, assign_ports(config, i)));
    } else {
      fleet.waiting.push_back(profile);
    }
  }
  if (!fleet.waiting.empty()) {
    spdlog::info("pool of {} children; {} profile(s) wait their turn", slots, fleet.waiting.size());
  }
  return fleet;
}

// Stops in order: no new requests, in-flight ones get the grace period, then
// the children go, then the loop ends.
awaitable<void> shut_down(HttpServer& server, HealthChecker& health, Supervisor* supervisor, const Config& config,
                          net::io_context& io, const bool& hurry) {
  sd_notify("STOPPING=1");
  server.stop_accepting();
  const auto grace_end = Clock::now() + config.shutdown_grace;
  SteadyTimer timer(io);
  if (server.requests_in_flight() > 0) {
    spdlog::info("waiting up to {:.0f} s for {} request(s) in flight", to_seconds(config.shutdown_grace),
                 server.requests_in_flight());
  }
  while (server.requests_in_flight() > 0 && Clock::now() < grace_end && !hurry) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(use_awaitable);
  }
  health.stop();
  server.close_all_connections();
  if (supervisor) co_await supervisor->stop_all(config.child_stop_timeout);
  spdlog::info("coordinator stopped");
  io.stop();
}

// WATCHDOG=1 at half the interval systemd expects, for as long as the loop runs.
awaitable<void> ping_watchdog(std::chrono::microseconds period) {
  SteadyTimer timer(co_await net::this_coro::executor);
  while (true) {
    sd_notify("WATCHDOG=1");
    timer.expires_after(period);
    co_await timer.async_wait(use_awaitable);
  }
}

// --state-file: empty means next to the logs; "none" turns it off.
std::filesystem::path state_file_of(const Config& config) {
  if (config.state_file == "none") return {};
  if (config.state_file.empty()) return config.log_dir / "state.json";
  return config.state_file;
}

// The "coordinator" of an alert: this host and the port it serves.
std::string coordinator_name(const Config& config) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    return config.host + ":" + std::to_string(config.port);
  return std::string(host) + ":" + std::to_string(config.port);
}

// The services of one run, built in the order they depend on each other (and
// torn down in reverse), on one io_context.
class Coordinator {
 public:
  Coordinator(const Config& config, Fleet fleet, const std::string& fleet_id, OrphanGuard& guard, ApiKeyStore& api_keys)
      : config_(config),
        guard_(guard),
        api_keys_(api_keys),
        io_(kOneThreadReactor),
        registry_(std::move(fleet.children)),
        cooldowns_(io_.get_executor(), registry_),
        dispatcher_(registry_, config.balance, config.max_queue, config.queue_timeout),
        pool_(registry_.size(), kIdleConnectionsPerChild, kMaxIdleAge),
        supervisor_(config.upstreams.empty() ? std::make_unique<Supervisor>(io_, config, registry_, guard,
                                                                            std::move(fleet.waiting), fleet_id)
                                             : nullptr),
        health_(io_, config, registry_),
        models_(io_, config, registry_),
        state_(io_.get_executor(), state_file_of(config), registry_, usage_),
        profile_facts_(std::chrono::duration_cast<std::chrono::system_clock::duration>(config.expiry_warning)),
        alerts_(io_.get_executor(), config.webhooks, config.webhook_secret, coordinator_name(config)),
        watch_(io_.get_executor(), registry_, profile_facts_, alerts_),
        profile_admin_(config, registry_, supervisor_.get()),
        server_(io_, config, services()) {
    registry_.set_capacity_listener([this] { dispatcher_.pump(); });
    registry_.set_serving_listener([this](std::size_t slot) { models_.wake(slot); });
    if (supervisor_) {
      supervisor_->on_slot_added([this](std::size_t slot) {
        pool_.resize(registry_.size());
        health_.watch(slot);
        models_.watch(slot);
      });
    }
  }

  // Listens, checks the children's ports and readies the supervisor; returns an error or "".
  std::string start();
  // Serves until a signal's shutdown ends the loop.
  void serve();

 private:
  ServerServices services();
  std::string reload();
  void recycle(std::size_t child, const std::string& reason);
  void on_stop_signal(const error_code& ec, int signal_number);
  void on_hangup(const error_code& ec);

  const Config& config_;
  OrphanGuard& guard_;
  ApiKeyStore& api_keys_;
  net::io_context io_;
  Registry registry_;
  CooldownTimers cooldowns_;  // ends every 429, quota and ejection cooldown
  Dispatcher dispatcher_;
  UpstreamPool pool_;
  Metrics metrics_;
  std::unique_ptr<Supervisor> supervisor_;
  HealthChecker health_;
  ModelLearner models_;              // each child's /v1/models, for routing by model and the union
  UsageBook usage_;                  // requests and tokens per child and key (GET /admin/usage)
  StateKeeper state_;                // the state file: cooldowns and usage across restarts
  ProfileFactsCache profile_facts_;  // each profile's cookie count and first expiry, read when its file changes
  AlertSender alerts_;               // --webhook posts
  FleetWatch watch_;                 // once a second: profile facts, expiry warnings, alerts
  ProfileAdmin profile_admin_;       // PUT and DELETE /admin/profiles/{name}
  HttpServer server_;
  std::optional<OrphanReaper> reaper_;
  std::optional<net::signal_set> signals_;
  std::optional<net::signal_set> hangup_;
  bool shutting_down_ = false;
  bool hurry_ = false;
};

ServerServices Coordinator::services() {
  AdminActions admin;
  if (supervisor_) {
    admin.restart = [this](std::size_t slot) { return supervisor_->restart(slot); };
    admin.drain = [this](std::size_t slot) { return supervisor_->drain(slot); };
    admin.undrain = [this](std::size_t slot) { return supervisor_->undrain(slot); };
  }
  admin.reload = [this] { return reload(); };
  admin.profile = [this](http::verb method, std::string_view name, std::string_view body) {
    auto answer = profile_admin_.answer(method, name, body);
    profile_facts_.refresh(registry_);  // /ready and /admin/profiles show the new file at once
    return answer;
  };
  auto recycle_child = [this](std::size_t child, std::string reason) { recycle(child, reason); };
  auto fleet_extra = [this] { return supervisor_ ? supervisor_->fleet_json() : std::string{}; };
  auto extra_metrics = [this](std::string& out) { alerts_.append_prometheus(out); };
  return ServerServices{registry_,     dispatcher_, pool_, metrics_,        usage_,       api_keys_,
                        recycle_child, fleet_extra, admin, &profile_facts_, extra_metrics};
}

// Re-reads the API keys and rescans the profiles (SIGHUP, POST /admin/reload).
std::string Coordinator::reload() {
  std::string problems;
  if (!config_.api_keys_file.empty()) {
    if (auto error = api_keys_.load(config_.api_keys_file)) {
      problems = *error + "; the previous keys stay in force";
    } else {
      spdlog::info("reload: {} API key(s)", api_keys_.size());
    }
  }
  if (supervisor_) {
    const ProfileDiscovery discovery = discover_profiles_for(config_);
    if (!discovery.error.empty()) {
      problems += (problems.empty() ? "" : "; ") + discovery.error + "; the children are left as they are";
    } else {
      pool_.resize(registry_.size() + discovery.profiles.size());
      spdlog::info("reload: {}", supervisor_->reload(discovery.profiles));
      profile_facts_.refresh(registry_);
    }
  }
  return problems;
}

void Coordinator::recycle(std::size_t child, const std::string& reason) {
  if (supervisor_) {
    supervisor_->recycle(child, reason);
  } else {
    // Attached: no process to restart; out of rotation until its health check passes.
    registry_.apply(child, ChildEvent::recycled, reason, Clock::now());
  }
}

std::string Coordinator::start() {
  if (auto error = server_.listen(); !error.empty()) return error;
  if (supervisor_) {
    for (const Child& child : registry_.children()) {
      if (auto error = check_port_free(child.ports.api); !error.empty()) return error;
    }
    if (auto error = supervisor_->prepare(); !error.empty()) return error;
    supervisor_->on_quota_signal([this](std::size_t slot) { server_.note_child_quota(slot); });
  }
  reaper_.emplace(io_, [this](pid_t pid) { return pid == guard_.pid() || (supervisor_ && supervisor_->manages(pid)); });
  reaper_->start();
  return {};
}

void Coordinator::on_stop_signal(const error_code& ec, int signal_number) {
  if (ec) return;
  if (!shutting_down_) {
    shutting_down_ = true;
    spdlog::info("received signal {}: shutting down (grace {:.0f} s)", signal_number,
                 to_seconds(config_.shutdown_grace));
    models_.stop();
    watch_.stop();  // the children stop now: no alert is about that
    net::co_spawn(io_, shut_down(server_, health_, supervisor_.get(), config_, io_, hurry_),
                  LogEscapedException{"shutdown"});
  } else {
    spdlog::info("received signal {} again: stopping children now", signal_number);
    hurry_ = true;
  }
  signals_->async_wait([this](const error_code& next_ec, int next) { on_stop_signal(next_ec, next); });
}

void Coordinator::on_hangup(const error_code& ec) {
  if (ec) return;
  spdlog::info("received SIGHUP: reloading");
  if (auto problems = reload(); !problems.empty()) spdlog::error("reload: {}", problems);
  hangup_->async_wait([this](const error_code& next_ec, int) { on_hangup(next_ec); });
}

void Coordinator::serve() {
  ::signal(SIGPIPE, SIG_IGN);
  signals_.emplace(io_, SIGTERM, SIGINT);
  signals_->async_wait([this](const error_code& ec, int signal_number) { on_stop_signal(ec, signal_number); });
  hangup_.emplace(io_, SIGHUP);
  hangup_->async_wait([this](const error_code& ec, int) { on_hangup(ec); });

  state_.load();  // before any child starts: a spent account's models stay cooled down
  state_.start();
  if (!supervisor_) {
    spdlog::info("coordinator listening on {}:{} in attach mode over {} upstream(s)", config_.host, config_.port,
                 registry_.size());
  } else {
    spdlog::info("coordinator listening on {}:{} with {} children (profiles {})", config_.host, config_.port,
                 registry_.size(), config_.profiles_dir.string());
    for (std::size_t slot = 0; slot < registry_.size(); ++slot) {
      if (const auto held = state_.held_back(registry_.at(slot)))
        supervisor_->hold_back(slot, held->logged_out, held->reason);
    }
    supervisor_->start();
  }
  server_.start();
  health_.start();
  models_.start();
  alerts_.start();
  watch_.start();
  if (alerts_.enabled()) {
    spdlog::info("alerts: {} webhook(s){}", config_.webhooks.size(),
                 config_.webhook_secret.empty() ? ", unsigned (no --webhook-secret)" : ", signed");
  }
  sd_notify("READY=1");
  if (const auto interval = sd_watchdog_interval()) {
    net::co_spawn(io_, ping_watchdog(*interval / 2), LogEscapedException{"watchdog"});
  }
  io_.run();
  state_.stop();  // the last snapshot, written before the process ends
}

}  // namespace

int run(const Config& config) {
  const bool attach_mode = !config.upstreams.empty();
  auto planned = attach_mode ? std::variant<Fleet, std::string>(attached_fleet(config)) : spawned_fleet(config);
  if (const auto* error = std::get_if<std::string>(&planned)) return fail(*error);

  // Marks every process of every child's tree (COORDINATOR_TREE), so that
  // the guard can find them all, and nothing else, if this process dies.
  const std::string fleet = make_fleet_id();
  OrphanGuard guard;
  if (!attach_mode && !guard.start(fleet, working_copies_folder(config, fleet).string())) {
    spdlog::warn("could not start the orphan guard; children may outlive a crashed coordinator");
  }

  ApiKeyStore api_keys;
  if (!config.api_keys_file.empty()) {
    if (auto error = api_keys.load(config.api_keys_file)) return fail(*error);
    spdlog::info("API keys required on /v1/* and /admin/* ({} key(s) from {})", api_keys.size(),
                 config.api_keys_file.string());
  }

  Coordinator coordinator(config, std::get<Fleet>(std::move(planned)), fleet, guard, api_keys);
  if (auto error = coordinator.start(); !error.empty()) return fail(error);
  coordinator.serve();
  guard.stop();
  return 0;
}

int main_entry(int argc, const char* const* argv) {
  ParseOutcome parsed = parse_command_line(argc, argv);
  if (auto* exit = std::get_if<ExitRequest>(&parsed)) {
    (exit->code == 0 ? std::cout : std::cerr) << exit->message << (exit->message.ends_with('\n') ? "" : "\n");
    return exit->code;
  }
  const Config& config = std::get<Config>(parsed);
  spdlog::set_default_logger(make_coordinator_logger());
  configure_logging(config.json_logs);
  const int status = run(config);
  spdlog::default_logger()->flush();
  return status;
}

}  // namespace coordinator
