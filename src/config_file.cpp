#include "coordinator/config_file.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "coordinator/config.hpp"

namespace coordinator {

namespace {

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r");
  return std::string(text.substr(first, last - first + 1));
}

// One scalar: a quoted string (no escapes beyond \" and \\), a number or a boolean.
std::optional<std::string> parse_scalar(std::string_view text) {
  const std::string value = trim(text);
  if (value.empty()) return std::nullopt;
  if (value.front() == '"' || value.front() == '\'') {
    if (value.size() < 2 || value.back() != value.front()) return std::nullopt;
    std::string out;
    for (std::size_t i = 1; i + 1 < value.size(); ++i) {
      if (value.front() == '"' && value[i] == '\\' && i + 2 < value.size()) ++i;
      out.push_back(value[i]);
    }
    return out;
  }
  for (char c : value) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' || c == '_')) {
      return std::nullopt;
    }
  }
  return value;
}

// Splits `a, "b, c", d` at top-level commas.
std::vector<std::string_view> split_array(std::string_view inner) {
  std::vector<std::string_view> parts;
  char quote = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < inner.size(); ++i) {
    const char c = inner[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == ',') {
      parts.push_back(inner.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(inner.substr(start));
  return parts;
}

std::string strip_comment(std::string_view line) {
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      return std::string(line.substr(0, i));
    }
  }
  return std::string(line);
}

}  // namespace

std::variant<std::vector<ConfigEntry>, std::string> parse_config_file(const std::string& path, std::string_view text) {
  std::vector<ConfigEntry> entries;
  int line_number = 0;
  std::istringstream lines{std::string(text)};
  std::string raw;
  while (std::getline(lines, raw)) {
    ++line_number;
    const std::string where = path + ":" + std::to_string(line_number) + ": ";
    const std::string line = trim(strip_comment(raw));
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') return where + "unclosed section header";
      continue;
    }
    const auto equals = line.find('=');
    if (equals == std::string::npos) return where + "expected key = value";
    ConfigEntry entry;
    entry.key = trim(std::string_view(line).substr(0, equals));
    entry.line = line_number;
    if (entry.key.empty() ||
        entry.key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos) {
      return where + "invalid key '" + entry.key + "'";
    }
    std::replace(entry.key.begin(), entry.key.end(), '_', '-');
    const std::string value = trim(std::string_view(line).substr(equals + 1));
    if (!value.empty() && value.front() == '[') {
      if (value.back() != ']') return where + "arrays must close on the same line";
      const std::string inner = trim(std::string_view(value).substr(1, value.size() - 2));
      if (!inner.empty()) {
        for (const auto part : split_array(inner)) {
          if (trim(part).empty()) continue;  // trailing comma
          auto scalar = parse_scalar(part);
          if (!scalar) return where + "bad array element for '" + entry.key + "'";
          entry.values.push_back(*scalar);
        }
      }
    } else {
      auto scalar = parse_scalar(value);
      if (!scalar) return where + "bad value for '" + entry.key + "' (quote strings)";
      entry.values.push_back(*scalar);
    }
    for (const auto& earlier : entries) {
      if (earlier.key == entry.key) return where + "'" + entry.key + "' set twice";
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::optional<std::string> apply_config_file(CLI::App& app, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "--config " + path + ": cannot be read";
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto parsed = parse_config_file(path, text);
  if (auto* error = std::get_if<std::string>(&parsed)) return *error;
  for (const ConfigEntry& entry : std::get<std::vector<ConfigEntry>>(parsed)) {
    const std::string where = path + ":" + std::to_string(entry.line) + ": ";
    CLI::Option* option = app.get_option_no_throw("--" + entry.key);
    if (option == nullptr || entry.key == "config" || entry.key == "print-config" || entry.key == "help") {
      return where + "unknown option '" + entry.key + "'";
    }
    if (option->count() > 0) continue;  // given on the command line
    const std::string env = option->get_envname();
    const char* env_value = env.empty() ? nullptr : std::getenv(env.c_str());
    if (env_value != nullptr && env_value[0] != '\0') continue;  // the environment wins (CLI11 ignores empty ones)
    try {
      option->clear();
      for (const auto& value : entry.values) option->add_result(value);
      option->run_callback();
    } catch (const CLI::Error& error) {
      return where + entry.key + ": " + error.what();
    }
    // Values checked after parsing get their file and line here too.
    for (const auto& value : entry.values) {
      std::string problem;
      if (entry.key == "upstream") {
        const auto parsed = parse_upstream(value);
        if (const auto* error = std::get_if<std::string>(&parsed)) problem = *error;
      } else if (entry.key == "model-alias" && !value.empty()) {
        const auto parsed = parse_model_alias(value);
        if (const auto* error = std::get_if<std::string>(&parsed)) problem = *error;
      } else if (entry.key == "webhook" && !value.empty()) {
        const auto parsed = parse_webhook_url(value);
        if (const auto* error = std::get_if<std::string>(&parsed)) problem = *error;
      } else if (entry.key == "shard" && !value.empty() && !parse_shard(value)) {
        problem = "expected K/N with 0 <= K < N";
      } else if (entry.key == "max-child-rss" && !parse_byte_size(value)) {
        problem = "'" + value + "' is not a size";
      }
      if (!problem.empty()) return where + entry.key + ": " + problem;
    }
  }
  return std::nullopt;
}

}  // namespace coordinator
