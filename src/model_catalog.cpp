#include "coordinator/model_catalog.hpp"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "coordinator/http_util.hpp"
#include "coordinator/json_check.hpp"

namespace coordinator {

namespace {

// api_utils/routers/models.py answers this owner's single entry while its page
// has delivered no list; until then it checks no requested model at all.
constexpr std::string_view kFallbackOwner = "camoufox-proxy-fallback";
// A list longer than this is cut (the real child lists a few dozen).
constexpr std::size_t kMaxModels = 1000;

bool is_fallback_entry(const nlohmann::json& entry) {
  const auto owner = entry.find("owned_by");
  return owner != entry.end() && owner->is_string() && owner->get<std::string>() == kFallbackOwner;
}

}  // namespace

std::string_view model_key(std::string_view id) {
  const auto slash = id.rfind('/');
  return slash == std::string_view::npos ? id : id.substr(slash + 1);
}

bool ModelSet::lists(std::string_view requested) const {
  const std::string_view key = model_key(requested);
  for (const ModelEntry& entry : entries) {
    if (entry.key == key) return true;
  }
  return false;
}

ModelsVerdict judge_models(unsigned status, std::string_view body) {
  if (status != 200) return {false, {}, "/v1/models answered " + std::to_string(status)};
  if (!check_json(body).is_object) return {false, {}, "/v1/models answered a body that is not a JSON object"};
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const auto data = json.find("data");
  if (data == json.end() || !data->is_array()) return {false, {}, "/v1/models has no \"data\" list"};
  ModelsVerdict verdict{true, {}, {}};
  bool only_fallback = true;
  for (const auto& entry : *data) {
    const auto id = entry.is_object() ? entry.find("id") : entry.end();
    if (!entry.is_object() || id == entry.end() || !id->is_string()) continue;  // not a model entry
    only_fallback = only_fallback && is_fallback_entry(entry);
    const std::string key(model_key(id->get<std::string>()));
    if (key.empty() || verdict.models.lists(key) || verdict.models.entries.size() >= kMaxModels) continue;
    verdict.models.entries.push_back({key, dump_json(entry)});
  }
  if (only_fallback) {
    verdict.models.entries.clear();  // no list yet: the child takes any model
    return verdict;
  }
  verdict.models.known = true;
  return verdict;
}

std::vector<std::string> model_ids(const std::vector<const ModelSet*>& sets) {
  std::vector<std::string> ids;
  for (const ModelSet* set : sets) {
    if (set == nullptr || !set->known) continue;
    for (const ModelEntry& entry : set->entries) {
      if (std::find(ids.begin(), ids.end(), entry.key) == ids.end()) ids.push_back(entry.key);
    }
  }
  return ids;
}

std::optional<std::string> models_union(const std::vector<const ModelSet*>& sets) {
  bool any_known = false;
  std::vector<std::string_view> seen;
  std::string body = R"({"object":"list","data":[)";
  for (const ModelSet* set : sets) {
    if (set == nullptr || !set->known) continue;
    any_known = true;
    for (const ModelEntry& entry : set->entries) {
      if (std::find(seen.begin(), seen.end(), entry.key) != seen.end()) continue;
      if (!seen.empty()) body += ',';
      seen.push_back(entry.key);
      body += entry.json;  // each entry is a JSON object already, as the child wrote it
    }
  }
  if (!any_known) return std::nullopt;
  body += "]}";
  return body;
}

bool names_no_model(std::string_view requested, std::string_view proxy_model_name) {
  // api_utils/model_switching.py: `if requested_model and requested_model != proxy_model_name`.
  return requested.empty() || requested == proxy_model_name;
}

std::string proxy_model_name_from_environment() {
  const char* value = std::getenv("MODEL_NAME");
  return value != nullptr && value[0] != '\0' ? std::string(value) : std::string(kDefaultProxyModelName);
}

std::string model_not_found_message(std::string_view requested, const std::vector<std::string>& known_ids) {
  std::string message = "The model '" + std::string(requested.substr(0, 200)) + "' is not listed by any ready child";
  if (known_ids.empty()) return message + ".";
  message += "; known models: ";
  for (std::size_t i = 0; i < known_ids.size(); ++i) {
    if (i > 0) message += ", ";
    message += known_ids[i];
  }
  return message + ".";
}

}  // namespace coordinator
