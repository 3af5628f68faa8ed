#include "coordinator/profile_facts.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

namespace coordinator {

ProfileFacts profile_facts(std::string_view text) {
  ProfileFacts facts;
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    facts.problem = json.is_discarded() ? "not JSON" : "not a JSON object";
    return facts;
  }
  const auto cookies = json.find("cookies");
  if (cookies == json.end() || !cookies->is_array()) {
    facts.problem = "no \"cookies\" array";
    return facts;
  }
  facts.valid = true;
  facts.cookies = cookies->size();
  for (const auto& cookie : *cookies) {
    if (!cookie.is_object()) continue;
    const auto expires = cookie.find("expires");
    // Playwright writes seconds since the epoch as a number; -1 for a session cookie.
    if (expires == cookie.end() || !expires->is_number()) continue;
    const double seconds = expires->get<double>();
    if (!std::isfinite(seconds) || seconds <= 0 || seconds > 1e11) continue;
    const auto at = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds)));
    if (!facts.earliest_expiry || at < *facts.earliest_expiry) facts.earliest_expiry = at;
  }
  return facts;
}

}  // namespace coordinator
