#include "coordinator/readiness.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>

#include "coordinator/http_util.hpp"
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

// Its profile's first cookie expiry, and whether that is within --expiry-warning.
void add_cookie_expiry(nlohmann::json& entry, const Child& child, const ProfileFactsCache& cache,
                       std::chrono::system_clock::time_point wall_now) {
  const ProfileFactsCache::Entry* facts = cache.find(child.name);
  if (facts == nullptr || !facts->facts.earliest_expiry) {
    entry["cookies_expire_at"] = nullptr;
    entry["expiring_soon"] = false;
    return;
  }
  entry["cookies_expire_at"] = format_utc(*facts->facts.earliest_expiry);
  entry["expiring_soon"] = cache.expiring_soon(*facts, wall_now);
  if (entry["expiring_soon"]) {
    entry["cookies_expire_in_days"] =
        std::chrono::duration<double>(*facts->facts.earliest_expiry - wall_now).count() / 86400.0;
  }
}

nlohmann::json children_array(const Registry& registry, Clock::time_point now, const UsageBook* usage,
                              const ProfileFactsCache* profiles) {
  const auto wall_now = std::chrono::system_clock::now();
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
    if (profiles != nullptr && !child.attached) add_cookie_expiry(children.back(), child, *profiles, wall_now);
    if (child.attached) children.back()["url"] = "http://" + child.host + ":" + std::to_string(child.ports.api);
  }
  return children;
}

}  // namespace

namespace {

nlohmann::json profile_entry(const Child& child, const ProfileFactsCache& cache,
                             std::chrono::system_clock::time_point wall_now) {
  nlohmann::json entry = {{"name", child.name},
                          {"state", to_string(child.state)},
                          {"file", child.profile.filename().string()},
                          {"file_time", nullptr},
                          {"cookies", nullptr},
                          {"earliest_cookie_expiry", nullptr},
                          {"expiring_soon", false}};
  const ProfileFactsCache::Entry* facts = cache.find(child.name);
  if (facts == nullptr) {
    entry["problem"] = "not read yet";
    return entry;
  }
  if (facts->file_time) entry["file_time"] = format_utc(*facts->file_time);
  if (!facts->problem.empty()) {
    entry["problem"] = facts->problem;
    return entry;
  }
  entry["cookies"] = facts->facts.cookies;
  if (facts->facts.earliest_expiry) {
    entry["earliest_cookie_expiry"] = format_utc(*facts->facts.earliest_expiry);
    entry["expiring_soon"] = cache.expiring_soon(*facts, wall_now);
  }
  return entry;
}

}  // namespace

std::string profiles_json(const Registry& registry, const ProfileFactsCache& cache) {
  const auto wall_now = std::chrono::system_clock::now();
  nlohmann::json profiles = nlohmann::json::array();
  for (const Child& child : registry.children()) {
    if (child.attached || child.profile.empty()) continue;
    // Taken out of the fleet (DELETE /admin/profiles, or a reload after its file went): no profile any more.
    std::error_code ec;
    if (child.state == ChildState::retired && !std::filesystem::exists(child.profile, ec)) continue;
    profiles.push_back(profile_entry(child, cache, wall_now));
  }
  return dump_json(nlohmann::json{{"profiles", std::move(profiles)}});
}

std::string children_json(const Registry& registry, Clock::time_point now, const UsageBook* usage,
                          const ProfileFactsCache* profiles) {
  return dump_json(children_array(registry, now, usage, profiles));
}

std::string readiness_body(const Registry& registry, Clock::time_point now, const std::string& extra_json,
                           const UsageBook* usage, const ProfileFactsCache* profiles) {
  const bool ready = registry.serving_count() > 0;
  nlohmann::json body = {
      {"status", ready ? "ready" : "degraded"},
      {"ready_children", registry.names_serving(true)},
      {"unhealthy_children", registry.names_serving(false)},
      {"total_children", registry.size()},
      {"children", children_array(registry, now, usage, profiles)},
  };
  if (!extra_json.empty()) {
    const auto extra = nlohmann::json::parse(extra_json, nullptr, false);
    if (extra.is_object()) body.update(extra);
  }
  return dump_json(body);
}

}  // namespace coordinator
