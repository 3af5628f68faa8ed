#include "coordinator/app.hpp"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <iostream>
#include <memory>

#include "coordinator/asio.hpp"
#include "coordinator/dispatcher.hpp"
#include "coordinator/health_checker.hpp"
#include "coordinator/http_server.hpp"
#include "coordinator/orphan_guard.hpp"
#include "coordinator/orphan_reaper.hpp"
#include "coordinator/profiles.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/supervisor.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

namespace {

constexpr std::size_t kIdleConnectionsPerChild = 16;
// Children (uvicorn) close idle keep-alive connections after 5 s.
constexpr auto kMaxIdleAge = std::chrono::seconds(4);

int fail(const std::string& message) {
  spdlog::error("{}", message);
  return 1;
}

// A child's API port must be free before the child is started.
std::string check_port_free(int port) {
  net::io_context io;
  tcp::acceptor probe(io);
  error_code ec;
  probe.open(tcp::v4(), ec);
  if (!ec) probe.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(tcp::endpoint(net::ip::address_v4::any(), static_cast<unsigned short>(port)), ec);
  if (ec) return "child API port " + std::to_string(port) + " is not free: " + ec.message();
  return {};
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

// Stops in order: no new requests, in-flight ones get the grace period, then
// the children go, then the loop ends.
awaitable<void> shut_down(HttpServer& server, HealthChecker& health, Supervisor* supervisor, const Config& config,
                          net::io_context& io, const bool& hurry) {
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
    const ProfileDiscovery discovery = discover_profiles(config.profiles_dir);
    for (const auto& skipped : discovery.skipped) {
      spdlog::error("skipping profile {}: {}", skipped.path.string(), skipped.reason);
    }
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

  OrphanGuard guard;
  if (!attach_mode && !guard.start()) {
    spdlog::warn("could not start the orphan guard; children may outlive a crashed coordinator");
  }

  net::io_context io;
  Registry registry(std::move(children));
  Dispatcher dispatcher(registry, config.balance, config.max_queue);
  registry.set_capacity_listener([&dispatcher] { dispatcher.pump(); });
  UpstreamPool pool(registry.size(), kIdleConnectionsPerChild, kMaxIdleAge);
  std::unique_ptr<Supervisor> supervisor;
  if (!attach_mode) supervisor = std::make_unique<Supervisor>(io, config, registry, guard, std::move(waiting));

  auto recycle = [&](std::size_t child, std::string reason) {
    if (supervisor) {
      supervisor->recycle(child, reason);
    } else {
      registry.apply(child, ChildEvent::health_failed, reason, Clock::now());
    }
  };
  auto fleet_extra = [&]() { return supervisor ? supervisor->fleet_json() : std::string{}; };
  HttpServer server(io, config, registry, dispatcher, pool, recycle, fleet_extra);
  if (auto error = server.listen(); !error.empty()) return fail(error);
  if (supervisor) {
    for (const Child& child : registry.children()) {
      if (auto error = check_port_free(child.ports.api); !error.empty()) return fail(error);
    }
    if (auto error = supervisor->prepare(); !error.empty()) return fail(error);
  }

  OrphanReaper reaper(io, [&](pid_t pid) { return pid == guard.pid() || (supervisor && supervisor->manages(pid)); });
  reaper.start();

  ::signal(SIGPIPE, SIG_IGN);
  net::signal_set signals(io, SIGTERM, SIGINT);
  bool shutting_down = false;
  bool hurry = false;
  HealthChecker health(io, config, registry);
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
  spdlog::set_default_logger(spdlog::stderr_color_st("coordinator"));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::flush_on(spdlog::level::info);
  return run(std::get<Config>(parsed));
}

}  // namespace coordinator
