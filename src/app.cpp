#include "coordinator/app.hpp"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <iostream>
#include <memory>

#include "coordinator/api_keys.hpp"
#include "coordinator/asio.hpp"
#include "coordinator/cli.hpp"
#include "coordinator/dispatcher.hpp"
#include "coordinator/health_checker.hpp"
#include "coordinator/http_server.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/orphan_guard.hpp"
#include "coordinator/orphan_reaper.hpp"
#include "coordinator/profiles.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/sd_notify.hpp"
#include "coordinator/supervisor.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

namespace {

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

// Stops in order: no new requests, in-flight ones get the grace period, then
// the children go, then the loop ends.
awaitable<void> shut_down(HttpServer& server, HealthChecker& health, Supervisor* supervisor, const Config& config,
                          net::io_context& io, const bool& hurry) {
  sd_notify("STOPPING=1");
  server.stop_accepting();
  const auto grace_end = Clock::now() + to_duration(config.shutdown_grace);
  net::steady_timer timer(io);
  if (server.requests_in_flight() > 0) {
    spdlog::info("waiting up to {:.0f} s for {} request(s) in flight", config.shutdown_grace,
                 server.requests_in_flight());
  }
  while (server.requests_in_flight() > 0 && Clock::now() < grace_end && !hurry) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(net::use_awaitable);
  }
  health.stop();
  server.close_all_connections();
  if (supervisor) co_await supervisor->stop_all(to_duration(config.child_stop_timeout));
  spdlog::info("coordinator stopped");
  io.stop();
}

// WATCHDOG=1 at half the interval systemd expects, for as long as the loop runs.
awaitable<void> ping_watchdog(std::chrono::microseconds period) {
  net::steady_timer timer(co_await net::this_coro::executor);
  while (true) {
    sd_notify("WATCHDOG=1");
    timer.expires_after(period);
    co_await timer.async_wait(net::use_awaitable);
  }
}

}  // namespace

int run(const Config& config) {
  const bool attach_mode = !config.upstreams.empty();
  std::vector<Child> children;
  std::deque<Profile> waiting;
  if (attach_mode) {
    for (const Upstream& upstream : config.upstreams) {
      Child child = make_child(config, upstream.name, {}, ChildPorts{upstream.port, 0, 0});
      child.host = upstream.host;
      child.attached = true;
      children.push_back(std::move(child));
    }
  } else {
    const ProfileDiscovery discovery = discover_profiles_for(config);
    if (!discovery.error.empty()) return fail(discovery.error);
    const std::size_t slots =
        config.pool_size == 0 ? discovery.profiles.size() : std::min(config.pool_size, discovery.profiles.size());
    if (auto problem = validate_port_layout(config, slots)) return fail(*problem);
    for (std::size_t i = 0; i < discovery.profiles.size(); ++i) {
      const Profile& profile = discovery.profiles[i];
      if (i < slots) {
        children.push_back(make_child(config, profile.name, profile.path, assign_ports(config, i)));
      } else {
        waiting.push_back(profile);
      }
    }
    if (!waiting.empty()) {
      spdlog::info("pool of {} children; {} profile(s) wait their turn", slots, waiting.size());
    }
  }

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

  net::io_context io;
  Registry registry(std::move(children));
  Dispatcher dispatcher(registry, config.balance, config.max_queue);
  registry.set_capacity_listener([&dispatcher] { dispatcher.pump(); });
  UpstreamPool pool(registry.size(), kIdleConnectionsPerChild, kMaxIdleAge);
  Metrics metrics;
  std::unique_ptr<Supervisor> supervisor;
  if (!attach_mode) supervisor = std::make_unique<Supervisor>(io, config, registry, guard, std::move(waiting), fleet);
  HealthChecker health(io, config, registry);

  // Re-reads the API keys and rescans the profiles (SIGHUP, POST /admin/reload).
  auto reload = [&]() -> std::string {
    std::string problems;
    if (!config.api_keys_file.empty()) {
      if (auto error = api_keys.load(config.api_keys_file)) {
        problems = *error + "; the previous keys stay in force";
      } else {
        spdlog::info("reload: {} API key(s)", api_keys.size());
      }
    }
    if (supervisor) {
      const ProfileDiscovery discovery = discover_profiles_for(config);
      if (!discovery.error.empty()) {
        problems += (problems.empty() ? "" : "; ") + discovery.error + "; the children are left as they are";
      } else {
        pool.resize(registry.size() + discovery.profiles.size());
        spdlog::info("reload: {}", supervisor->reload(discovery.profiles));
      }
    }
    return problems;
  };
  AdminActions admin;
  if (supervisor) {
    admin.restart = [&](std::size_t slot) { return supervisor->restart(slot); };
    admin.drain = [&](std::size_t slot) { return supervisor->drain(slot); };
    admin.undrain = [&](std::size_t slot) { return supervisor->undrain(slot); };
    supervisor->on_slot_added([&](std::size_t slot) {
      pool.resize(registry.size());
      health.watch(slot);
    });
  }
  admin.reload = reload;

  auto recycle = [&](std::size_t child, std::string reason) {
    if (supervisor) {
      supervisor->recycle(child, reason);
    } else {
      registry.apply(child, ChildEvent::health_failed, reason, Clock::now());
    }
  };
  auto fleet_extra = [&]() { return supervisor ? supervisor->fleet_json() : std::string{}; };
  HttpServer server(io, config,
                    ServerServices{registry, dispatcher, pool, metrics, api_keys, recycle, fleet_extra, admin});
  if (auto error = server.listen(); !error.empty()) return fail(error);
  if (supervisor) {
    for (const Child& child : registry.children()) {
      if (auto error = check_port_free(child.ports.api); !error.empty()) return fail(error);
    }
    if (auto error = supervisor->prepare(); !error.empty()) return fail(error);
    supervisor->on_quota_signal([&](std::size_t slot) { server.note_child_quota(slot); });
  }

  OrphanReaper reaper(io, [&](pid_t pid) { return pid == guard.pid() || (supervisor && supervisor->manages(pid)); });
  reaper.start();

  ::signal(SIGPIPE, SIG_IGN);
  net::signal_set signals(io, SIGTERM, SIGINT);
  bool shutting_down = false;
  bool hurry = false;
  std::function<void(const error_code&, int)> on_signal = [&](const error_code& ec, int signal_number) {
    if (ec) return;
    if (!shutting_down) {
      shutting_down = true;
      spdlog::info("received signal {}: shutting down (grace {:.0f} s)", signal_number, config.shutdown_grace);
      net::co_spawn(io, shut_down(server, health, supervisor.get(), config, io, hurry),
                    LogEscapedException{"shutdown"});
    } else {
      spdlog::info("received signal {} again: stopping children now", signal_number);
      hurry = true;
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  net::signal_set hangup(io, SIGHUP);
  std::function<void(const error_code&, int)> on_hangup = [&](const error_code& ec, int) {
    if (ec) return;
    spdlog::info("received SIGHUP: reloading");
    if (auto problems = reload(); !problems.empty()) spdlog::error("reload: {}", problems);
    hangup.async_wait(on_hangup);
  };
  hangup.async_wait(on_hangup);

  if (attach_mode) {
    spdlog::info("coordinator listening on {}:{} in attach mode over {} upstream(s)", config.host, config.port,
                 registry.size());
  } else {
    spdlog::info("coordinator listening on {}:{} with {} children (profiles {})", config.host, config.port,
                 registry.size(), config.profiles_dir.string());
    supervisor->start();
  }
  server.start();
  health.start();
  sd_notify("READY=1");
  if (const auto interval = sd_watchdog_interval()) {
    net::co_spawn(io, ping_watchdog(*interval / 2), LogEscapedException{"watchdog"});
  }
  io.run();
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
  spdlog::set_default_logger(spdlog::stderr_color_st("coordinator"));
  configure_logging(config.json_logs);
  spdlog::flush_on(spdlog::level::info);
  return run(config);
}

}  // namespace coordinator
