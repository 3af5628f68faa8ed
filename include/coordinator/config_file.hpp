#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace CLI {
class App;
}

namespace coordinator {

// One `key = value` of a TOML config file, with its line for error messages.
struct ConfigEntry {
  std::string key;
  std::vector<std::string> values;  // one, or several for an array
  int line = 0;
};

// Parses the TOML subset a config file uses (comments, `key = value` with
// strings, numbers, booleans and arrays of those; `[coordinator]` section
// headers are allowed and ignored). Returns "FILE:LINE: reason" on error.
std::variant<std::vector<ConfigEntry>, std::string> parse_config_file(const std::string& path, std::string_view text);

// Applies the file's values to options that neither the command line nor the
// environment set, so that the precedence is command line > environment > file.
// Returns "FILE[:LINE]: reason" on error.
std::optional<std::string> apply_config_file(CLI::App& app, const std::string& path);

}  // namespace coordinator
