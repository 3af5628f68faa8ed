// Files an operator drops next to the coordinator, and request bodies:
//  - check_json (the nesting-capped SAX check used on every chat body and every
//    auth profile) against nlohmann's own parser: same verdict, same top-level
//    type, same "stream": true decision, the same top-level "model" string,
//    and the depth cap honoured exactly;
//  - parse_env_file (a profile's {name}.env): only well-formed names come out,
//    errors never quote the file;
//  - parse_api_keys (key.txt) and constant_time_equals.
// Input: the whole input is the JSON text / env file / keys file; for
// constant_time_equals it is split at its first NUL byte.
#include <limits>
#include <nlohmann/json.hpp>

#include "coordinator/api_keys.hpp"
#include "coordinator/json_check.hpp"
#include "coordinator/profiles.hpp"
#include "fuzz_util.hpp"

namespace {

// Deepest nesting of a valid document (0 for a scalar).
class DepthSax final : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool key(string_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
  std::size_t max_depth = 0;

 private:
  bool open() {
    max_depth = std::max(max_depth, ++depth_);
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }
  std::size_t depth_ = 0;
};

bool is_env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

void check_json_properties(std::string_view text) {
  const auto unlimited = coordinator::check_json(text, std::numeric_limits<std::size_t>::max());
  // nlohmann takes a NUL byte for the end of its input (and accepts "0\n\0junk");
  // JSON never holds a raw NUL, and the check refuses it wherever it is.
  const std::string_view before_nul = text.substr(0, text.find('\0'));
  const bool accepted = before_nul.size() == text.size() && nlohmann::json::accept(text);
  FUZZ_CHECK(unlimited.valid == accepted);
  if (!accepted) {
    FUZZ_CHECK(!unlimited.is_object && !unlimited.stream_requested && !unlimited.error.empty());
    // The reason is ours, never a quote of the input.
    FUZZ_CHECK(unlimited.error.size() < 64);
    return;
  }
  DepthSax depth;
  FUZZ_CHECK(nlohmann::json::sax_parse(text.begin(), text.end(), &depth));
  for (const std::size_t cap : {std::size_t{1}, std::size_t{2}, std::size_t{8}, std::size_t{128}}) {
    const auto capped = coordinator::check_json(text, cap);
    FUZZ_CHECK(capped.valid == (depth.max_depth <= cap));
    if (!capped.valid) FUZZ_CHECK(capped.error == "JSON nested deeper than " + std::to_string(cap) + " levels");
  }
  if (depth.max_depth > 128) return;  // the DOM below stays shallow
  const auto dom = nlohmann::json::parse(text);
  FUZZ_CHECK(unlimited.is_object == dom.is_object());
  // JSON leaves duplicate names open; the children (Python) keep the last one,
  // and so does nlohmann's DOM: "stream" must be decided the same way.
  const bool stream = dom.is_object() && dom.contains("stream") && dom["stream"] == true;
  FUZZ_CHECK(unlimited.stream_requested == stream);
  FUZZ_CHECK(coordinator::check_json(text).stream_requested == stream);
  // The top-level "model" string, decided and decoded as the DOM does (the last duplicate).
  const bool model = dom.is_object() && dom.contains("model") && dom["model"].is_string();
  FUZZ_CHECK(unlimited.has_model == model);
  std::string storage;
  if (model) FUZZ_CHECK(coordinator::model_text(unlimited, storage) == dom["model"].get<std::string>());
}

void check_env_file(std::string_view text) {
  const auto env = coordinator::parse_env_file(text);
  for (const auto& [name, value] : env.variables) {
    FUZZ_CHECK(is_env_name(name));
    FUZZ_CHECK(value.find('\n') == std::string::npos);
  }
  for (const auto& error : env.errors) {
    FUZZ_CHECK(error.rfind("line ", 0) == 0);
    const auto colon = error.find(": ");
    FUZZ_CHECK(colon != std::string::npos);
    const std::string reason = error.substr(colon + 2);
    FUZZ_CHECK(reason == "expected KEY=VALUE" || reason == "invalid variable name");
  }
  const std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  FUZZ_CHECK(env.variables.size() + env.errors.size() <= lines);
}

void check_api_keys(std::string_view text) {
  const auto keys = coordinator::parse_api_keys(text);
  for (const auto& key : keys) {
    FUZZ_CHECK(!key.empty() && key.front() != '#' && key.find('\n') == std::string::npos);
    for (const char edge : {key.front(), key.back()}) FUZZ_CHECK(edge != ' ' && edge != '\t' && edge != '\r');
    FUZZ_CHECK(text.find(key) != std::string_view::npos);
  }
  const std::size_t limit = std::min<std::size_t>(keys.size(), 8);
  for (std::size_t i = 0; i < limit; ++i) {
    for (std::size_t j = 0; j < limit; ++j) {
      FUZZ_CHECK(coordinator::constant_time_equals(keys[i], keys[j]) == (keys[i] == keys[j]));
    }
  }
  const auto parts = fuzz::split(text, '\0', 2);
  const std::string_view a = parts[0];
  const std::string_view b = parts.size() > 1 ? std::string_view(parts[1]) : std::string_view{};
  FUZZ_CHECK(coordinator::constant_time_equals(a, b) == (a == b));
  FUZZ_CHECK(coordinator::constant_time_equals(b, a) == (a == b));
  FUZZ_CHECK(coordinator::constant_time_equals(a, a));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fuzz::as_view(data, size);
  check_json_properties(input);
  check_env_file(input);
  check_api_keys(input);
  return 0;
}
