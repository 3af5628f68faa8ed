#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coordinator {

// Keys in AIstudioProxyAPI's key.txt format: one per line, blank lines and
// `#` comments ignored, surrounding spaces trimmed.
std::vector<std::string> parse_api_keys(std::string_view text);

// Compares without an early exit, so timing does not reveal a key's prefix.
bool constant_time_equals(std::string_view a, std::string_view b);

// The key a request presents: `Authorization: Bearer KEY`, else `X-API-Key: KEY`
// (also Anthropic's x-api-key), else Gemini's `x-goog-api-key: KEY`, else its `?key=KEY`.
struct KeyCarriers {
  std::string_view authorization;
  std::string_view x_api_key;
  std::string_view x_goog_api_key;
  std::string_view key_param;
};
std::optional<std::string_view> presented_key(const KeyCarriers& carriers);
std::optional<std::string_view> presented_key(std::string_view authorization, std::string_view x_api_key);

// The keys required at the edge, re-read on SIGHUP. Keys are never logged.
class ApiKeyStore {
 public:
  // Reads `path`; on failure keeps the keys it had and returns a one-line reason.
  std::optional<std::string> load(const std::filesystem::path& path);
  bool enabled() const { return enabled_; }
  bool allows(std::optional<std::string_view> key) const;
  std::size_t size() const { return keys_.size(); }

 private:
  bool enabled_ = false;
  std::vector<std::string> keys_;
};

}  // namespace coordinator
