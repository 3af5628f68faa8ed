#include "coordinator/readiness.hpp"

#include <nlohmann/json.hpp>

#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

nlohmann::json children_array(const Registry& registry, Clock::time_point now) {
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
    if (child.attached) children.back()["url"] = "http://" + child.host + ":" + std::to_string(child.ports.api);
  }
  return children;
}

}  // namespace

std::string children_json(const Registry& registry, Clock::time_point now) {
  return dump_json(children_array(registry, now));
}

std::string readiness_body(const Registry& registry, Clock::time_point now, const std::string& extra_json) {
  const bool ready = registry.serving_count() > 0;
  nlohmann::json body = {
      {"status", ready ? "ready" : "degraded"},
      {"ready_children", registry.names_serving(true)},
      {"unhealthy_children", registry.names_serving(false)},
      {"total_children", registry.size()},
      {"children", children_array(registry, now)},
  };
  if (!extra_json.empty()) {
    const auto extra = nlohmann::json::parse(extra_json, nullptr, false);
    if (extra.is_object()) body.update(extra);
  }
  return dump_json(body);
}

}  // namespace coordinator
