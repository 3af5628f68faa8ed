#include "coordinator/api_keys.hpp"

#include <fstream>
#include <iterator>

#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {
std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\r')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}
}  // namespace

std::vector<std::string> parse_api_keys(std::string_view text) {
  std::vector<std::string> keys;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    keys.emplace_back(line);
  }
  return keys;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  // Length is compared last and every byte of `b` is read, whatever `a` holds.
  unsigned char difference = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const unsigned char left = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    difference |= static_cast<unsigned char>(left ^ static_cast<unsigned char>(b[i]));
  }
  return difference == 0 && a.size() == b.size();
}

std::optional<std::string_view> presented_key(const KeyCarriers& carriers) {
  const std::string_view authorization = trim(carriers.authorization);
  if (authorization.size() > 7 && iequals(authorization.substr(0, 7), "bearer ")) {
    return trim(authorization.substr(7));
  }
  for (const std::string_view carrier : {carriers.x_api_key, carriers.x_goog_api_key, carriers.key_param}) {
    if (const std::string_view key = trim(carrier); !key.empty()) return key;
  }
  return std::nullopt;
}

std::optional<std::string_view> presented_key(std::string_view authorization, std::string_view x_api_key) {
  return presented_key(KeyCarriers{authorization, x_api_key, {}, {}});
}

std::optional<std::string> ApiKeyStore::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "API keys file " + path.string() + " cannot be read";
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> keys = parse_api_keys(text);
  if (keys.empty()) return "API keys file " + path.string() + " holds no key";
  keys_ = std::move(keys);
  enabled_ = true;
  return std::nullopt;
}

bool ApiKeyStore::allows(std::optional<std::string_view> key) const {
  if (!enabled_) return true;
  if (!key || key->empty()) return false;
  bool allowed = false;
  for (const auto& known : keys_) allowed |= constant_time_equals(*key, known);
  return allowed;
}

}  // namespace coordinator
