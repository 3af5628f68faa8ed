#include "coordinator/app.hpp"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "coordinator/asio.hpp"
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

std::vector<Child> make_children(const Config& config, const std::vector<Profile>& profiles) {
  std::vector<Child> children;
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    Child child;
    child.name = profiles[i].name;
    child.profile = profiles[i].path;
    child.ports = assign_ports(config, i);
    child.state_since = Clock::now();
    children.push_back(std::move(child));
  }
  return children;
}

// Stops in order: no new requests, in-flight ones get the grace period, then
// the children go, then the loop ends.
awaitable<void> shut_down(HttpServer& server, HealthChecker& health, Supervisor& supervisor, const Config& config,
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
  co_await supervisor.stop_all(to_duration(config.child_stop_timeout));
  spdlog::info("coordinator stopped");
  io.stop();
}

}  // namespace

int run(const Config& config) {
  const ProfileDiscovery discovery = discover_profiles(config.profiles_dir);
  for (const auto& skipped : discovery.skipped) {
    spdlog::error("skipping profile {}: {}", skipped.path.string(), skipped.reason);
  }
  if (!discovery.error.empty()) return fail(discovery.error);
  if (auto problem = validate_port_layout(config, discovery.profiles.size())) return fail(*problem);

  OrphanGuard guard;
  if (!guard.start()) spdlog::warn("could not start the orphan guard; children may outlive a crashed coordinator");

  net::io_context io;
  Registry registry(make_children(config, discovery.profiles));
  UpstreamPool pool(registry.size(), kIdleConnectionsPerChild, kMaxIdleAge);
  HttpServer server(io, config, registry, pool);
  if (auto error = server.listen(); !error.empty()) return fail(error);
  for (const Child& child : registry.children()) {
    if (auto error = check_port_free(child.ports.api); !error.empty()) return fail(error);
  }
  Supervisor supervisor(io, config, registry, guard);
  if (auto error = supervisor.prepare(); !error.empty()) return fail(error);

  OrphanReaper reaper(io, [&](pid_t pid) { return pid == guard.pid() || supervisor.manages(pid); });
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
      net::co_spawn(io, shut_down(server, health, supervisor, config, io, hurry), LogEscapedException{"shutdown"});
    } else {
      spdlog::info("received signal {} again: stopping children now", signal_number);
      hurry = true;
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  spdlog::info("coordinator listening on {}:{} with {} children (profiles {})", config.host, config.port,
               registry.size(), config.profiles_dir.string());
  for (std::size_t i = 0; i < registry.size(); ++i) supervisor.spawn(i);
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
