#include "coordinator/readiness.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "coordinator/http_util.hpp"
#include "coordinator/profile_facts.hpp"
#include "coordinator/utc_time.hpp"

namespace coordinator {

namespace {

// A steady-clock moment as UTC wall time, e.g. "2026-12-01T20:15:00Z".
std::string utc_text(Clock::time_point at, Clock::time_point now) {
  const auto wall = wall_clock_of(at, now, std::chrono::system_clock::now());
  const std::time_t seconds = std::chrono::system_clock::to_time_t(wall);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

// The models of its account out of service, each with when it is back and why.
nlohmann::json cooling_models(const Child& child, Clock::time_point now) {
  nlohmann::json models = nlohmann::json::array();
  for (const ModelCooldown& cooldown : child.model_cooldowns.entries()) {
    if (cooldown.until <= now) continue;
    models.push_back({{"model", cooldown.model},
                      {"until", utc_text(cooldown.until, now)},
                      {"seconds_left", std::chrono::duration<double>(cooldown.until - now).count()},
                      {"cause", to_string(cooldown.cause)},
                      {"reason", cooldown.reason}});
  }
  return models;
}

nlohmann::json children_array(const Registry& registry, Clock::time_point now, const UsageBook* usage = nullptr) {
  nlohmann::json children = nlohmann::json::array();
  for (const Child& child : registry.children()) {
    children.push_back({
        {"name", child.name},
        {"state", to_string(child.state)},
        {"ports", {{"api", child.ports.api}, {"stream", child.ports.stream}, {"camoufox", child.ports.camoufox}}},
        {"pid", child.pid},
        {"in_flight", child.in_flight},
        {"served", child.served},
        {"failures", child.failures},
        {"restarts", child.restarts},
        {"ejections", child.ejections},
        {"last_error", child.last_error},
        {"seconds_in_state", std::chrono::duration<double>(now - child.state_since).count()},
    });
    // How many models its /v1/models listed; null until a list was read (it then takes any model).
    children.back()["models"] = child.models.known ? nlohmann::json(child.models.entries.size()) : nlohmann::json();
    children.back()["cooling_models"] = cooling_models(child, now);
    if (usage != nullptr) {
      std::uint64_t requests = 0;
      const UsageBook::Counters today = usage->today_of_child(child.name, std::chrono::system_clock::now());
      for (const auto count : today.requests) requests += count;
      children.back()["today"] = {{"requests", requests}, {"tokens", today.tokens.total}};
    }
    if (child.state == ChildState::cooling) {
      children.back()["cooling_until"] = utc_text(child.cooling_until, now);
      children.back()["cooling_cause"] = to_string(child.cooling_cause);
    }
    if (child.attached) children.back()["url"] = "http://" + child.host + ":" + std::to_string(child.ports.api);
  }
  return children;
}

}  // namespace

namespace {

constexpr std::uintmax_t kMaxProfileBytes = 16u << 20;  // a storage state is kilobytes; refuse to slurp a huge file

nlohmann::json profile_entry(const Child& child, Clock::duration expiry_warning,
                             std::chrono::system_clock::time_point wall_now) {
  nlohmann::json entry = {{"name", child.name},
                          {"state", to_string(child.state)},
                          {"file", child.profile.filename().string()},
                          {"file_time", nullptr},
                          {"cookies", nullptr},
                          {"earliest_cookie_expiry", nullptr},
                          {"expiring_soon", false}};
  std::error_code ec;
  const auto size = std::filesystem::file_size(child.profile, ec);
  const auto written = std::filesystem::last_write_time(child.profile, ec);
  if (ec || size > kMaxProfileBytes) {
    entry["problem"] = ec ? "cannot read the file: " + ec.message() : std::string("the file is too large");
    return entry;
  }
  entry["file_time"] = format_utc(
      std::chrono::time_point_cast<std::chrono::system_clock::duration>(std::chrono::file_clock::to_sys(written)));
  std::ifstream in(child.profile, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const ProfileFacts facts = profile_facts(text);
  if (!facts.valid) {
    entry["problem"] = facts.problem;
    return entry;
  }
  entry["cookies"] = facts.cookies;
  if (facts.earliest_expiry) {
    entry["earliest_cookie_expiry"] = format_utc(*facts.earliest_expiry);
    entry["expiring_soon"] = *facts.earliest_expiry - wall_now <= expiry_warning;
  }
  return entry;
}

}  // namespace

std::string profiles_json(const Registry& registry, Clock::duration expiry_warning) {
  const auto wall_now = std::chrono::system_clock::now();
  nlohmann::json profiles = nlohmann::json::array();
  for (const Child& child : registry.children()) {
    if (child.attached || child.profile.empty()) continue;
    // Taken out of the fleet (DELETE /admin/profiles, or a reload after its file went): no profile any more.
    std::error_code ec;
    if (child.state == ChildState::retired && !std::filesystem::exists(child.profile, ec)) continue;
    profiles.push_back(profile_entry(child, expiry_warning, wall_now));
  }
  return dump_json(nlohmann::json{{"profiles", std::move(profiles)}});
}

std::string children_json(const Registry& registry, Clock::time_point now, const UsageBook* usage) {
  return dump_json(children_array(registry, now, usage));
}

std::string readiness_body(const Registry& registry, Clock::time_point now, const std::string& extra_json,
                           const UsageBook* usage) {
  const bool ready = registry.serving_count() > 0;
  nlohmann::json body = {
      {"status", ready ? "ready" : "degraded"},
      {"ready_children", registry.names_serving(true)},
      {"unhealthy_children", registry.names_serving(false)},
      {"total_children", registry.size()},
      {"children", children_array(registry, now, usage)},
  };
  if (!extra_json.empty()) {
    const auto extra = nlohmann::json::parse(extra_json, nullptr, false);
    if (extra.is_object()) body.update(extra);
  }
  return dump_json(body);
}

}  // namespace coordinator
