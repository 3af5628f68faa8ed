#include "coordinator/profiles.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <system_error>

#include "coordinator/json_check.hpp"

namespace coordinator {

namespace fs = std::filesystem;

namespace {

// Profiles are small cookie jars; anything far larger is a mistake, not a profile.
constexpr std::uintmax_t kMaxProfileBytes = 16u * 1024 * 1024;

std::string check_profile_file(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return "cannot read: " + ec.message();
  if (size > kMaxProfileBytes) return "larger than 16 MiB";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open for reading";
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const JsonCheck check = check_json(text);
  if (!check.valid) return "not valid JSON (" + check.error + ")";
  if (!check.is_object) return "not a JSON object";
  return {};
}

}  // namespace

ProfileDiscovery discover_profiles(const fs::path& dir) {
  ProfileDiscovery result;
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (ec || !fs::exists(status)) {
    result.error = "profiles folder " + dir.string() + " does not exist";
    return result;
  }
  if (!fs::is_directory(status)) {
    result.error = "profiles path " + dir.string() + " is not a folder";
    return result;
  }
  std::vector<fs::path> candidates;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    if (path.extension() != ".json" || path.stem().empty()) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    candidates.push_back(path);
  }
  if (ec) {
    result.error = "cannot list profiles folder " + dir.string() + ": " + ec.message();
    return result;
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  for (const auto& path : candidates) {
    const fs::path absolute = fs::absolute(path, ec).lexically_normal();
    if (std::string reason = check_profile_file(path); !reason.empty()) {
      result.skipped.push_back({absolute, std::move(reason)});
      continue;
    }
    result.profiles.push_back({path.stem().string(), absolute});
  }
  if (result.profiles.empty()) {
    result.error = "no usable profile (*.json holding a JSON object) in " + dir.string();
  }
  return result;
}

}  // namespace coordinator

namespace coordinator {

EnvFile parse_env_file(std::string_view text) {
  EnvFile result;
  std::size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    if (line.substr(0, 7) == "export ") line.remove_prefix(7);
    const std::size_t equals = line.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      result.errors.push_back("line " + std::to_string(line_number) + ": expected KEY=VALUE");
      continue;
    }
    std::string_view key = line.substr(0, equals);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    const bool key_ok = !key.empty() && !std::isdigit(static_cast<unsigned char>(key.front())) &&
                        std::all_of(key.begin(), key.end(), [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
                        });
    if (!key_ok) {
      result.errors.push_back("line " + std::to_string(line_number) + ": invalid variable name");
      continue;
    }
    std::string_view value = line.substr(equals + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    result.variables.emplace_back(std::string(key), std::string(value));
  }
  return result;
}

std::filesystem::path env_file_for(const std::filesystem::path& profile) {
  std::filesystem::path env = profile;
  env.replace_extension(".env");
  return env;
}

}  // namespace coordinator
