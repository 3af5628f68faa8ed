#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coordinator {

// The model name the real child takes for "whatever model the page has now"
// (config/constants.py MODEL_NAME; ChatCompletionRequest.model defaults to it).
inline constexpr std::string_view kDefaultProxyModelName = "AI-Studio_Proxy_API";

// The id a model is compared by: the part after the last '/', as the real child
// compares a requested model (api_utils/model_switching.py: split("/")[-1]) and
// as it writes its own ids (browser_utils/operations_modules/parsers.py).
std::string_view model_key(std::string_view id);

// One model a child lists: the id it is compared by, and the child's entry as
// it wrote it (compact JSON), so the union keeps the child's fields.
struct ModelEntry {
  std::string key;
  std::string json;
  bool operator==(const ModelEntry&) const = default;
};

// The models one child serves, as read from its GET /v1/models. Not `known`
// until a list was read: such a child is given any model, because the real
// child checks a model against its own list and, without one, takes any.
struct ModelSet {
  bool known = false;
  std::vector<ModelEntry> entries;

  bool lists(std::string_view requested) const;
  // Empty `requested`: a request that names no model, which any child serves.
  bool may_serve(std::string_view requested) const { return requested.empty() || !known || lists(requested); }
  bool operator==(const ModelSet&) const = default;
};

// What a child's /v1/models answer means. `ok` with an unknown set: the child
// has no list yet (the real child's fallback entry, or an empty list).
struct ModelsVerdict {
  bool ok = false;
  ModelSet models;
  std::string error;  // why not, short; never quotes the body
};
ModelsVerdict judge_models(unsigned status, std::string_view body);

// The OpenAI list {"object":"list","data":[...]} of every model the known sets
// hold, each id once (the first child's entry wins); nothing when no set is known.
std::optional<std::string> models_union(const std::vector<const ModelSet*>& sets);
// The ids of that union, in the same order.
std::vector<std::string> model_ids(const std::vector<const ModelSet*>& sets);

// A request that names no particular model: none, an empty one, or the child's
// own MODEL_NAME (the real child then keeps the page's model).
bool names_no_model(std::string_view requested, std::string_view proxy_model_name);
// MODEL_NAME from the coordinator's environment (every child inherits it), else the real default.
std::string proxy_model_name_from_environment();

// The message of a 404 model_not_found.
std::string model_not_found_message(std::string_view requested, const std::vector<std::string>& known_ids);

}  // namespace coordinator
