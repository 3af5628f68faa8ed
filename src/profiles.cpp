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
