// Everything an operator (or a template, or a config-management tool) hands the
// coordinator at start:
//  - parse_config_file on the input as a TOML file;
//  - parse_upstream, parse_byte_size, parse_shard on the input;
//  - parse_command_line with argv made by splitting the input at NUL bytes (at
//    most 64 arguments). A `--config FILE` in there is pointed at a scratch file
//    holding the input (NULs turned into newlines), so apply_config_file runs on
//    fuzzed text too and no other file is ever read.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "coordinator/cli.hpp"
#include "coordinator/config.hpp"
#include "coordinator/config_file.hpp"
#include "fuzz_util.hpp"

namespace {

// Never destroyed: the atexit handler below still needs it.
const std::string& scratch_config_path() {
  static const std::string& path = *new std::string([] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/coordinator-fuzz-config-" +
           std::to_string(::getpid()) + ".toml";
  }());
  return path;
}

void check_config_file(std::string_view text) {
  const auto parsed = coordinator::parse_config_file("fuzz.toml", text);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(error->rfind("fuzz.toml:", 0) == 0);
    return;
  }
  const auto& entries = std::get<std::vector<coordinator::ConfigEntry>>(parsed);
  int last_line = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& entry = entries[i];
    FUZZ_CHECK(!entry.key.empty());
    FUZZ_CHECK(entry.key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos);
    FUZZ_CHECK(entry.line > last_line);
    last_line = entry.line;
    for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(entries[j].key != entry.key);
  }
}

void check_upstream(const std::string& text) {
  const auto parsed = coordinator::parse_upstream(text);
  if (const auto* upstream = std::get_if<coordinator::Upstream>(&parsed)) {
    FUZZ_CHECK(upstream->port >= 1 && upstream->port <= 65535);
    FUZZ_CHECK(!upstream->host.empty() && !upstream->name.empty());
    FUZZ_CHECK(upstream->host.find('/') == std::string::npos);
  } else {
    FUZZ_CHECK(!std::get<std::string>(parsed).empty());
  }
}

void check_byte_size(const std::string& text) {
  const auto size = coordinator::parse_byte_size(text);
  if (!size) return;
  // A plain number comes back as written.
  if (text.find_first_not_of("0123456789") == std::string::npos) FUZZ_CHECK(*size == std::stoull(text));
}

void check_shard(const std::string& text) {
  const auto shard = coordinator::parse_shard(text);
  if (shard) FUZZ_CHECK(shard->second > 0 && shard->first < shard->second);
}

void check_command_line(std::string_view input) {
  auto args = fuzz::split(input, '\0', 64);
  const std::string& config_path = scratch_config_path();
  bool wants_config = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      args[i + 1] = config_path;
      wants_config = true;
    } else if (args[i].rfind("--config=", 0) == 0) {
      args[i] = "--config=" + config_path;
      wants_config = true;
    }
  }
  if (wants_config) {
    std::string text(input);
    for (char& c : text) {
      if (c == '\0') c = '\n';
    }
    std::ofstream(config_path, std::ios::binary | std::ios::trunc) << text;
  }
  std::vector<const char*> argv{"coordinator"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  const auto outcome = coordinator::parse_command_line(static_cast<int>(argv.size()), argv.data());
  if (const auto* exit = std::get_if<coordinator::ExitRequest>(&outcome)) {
    FUZZ_CHECK(exit->code == 0 || exit->code == 2);
    FUZZ_CHECK(!exit->message.empty());
    return;
  }
  const auto& config = std::get<coordinator::Config>(outcome);
  for (const int port :
       {config.port, config.base_api_port, config.base_stream_port, config.base_camoufox_port, config.port_step}) {
    FUZZ_CHECK(port >= 1 && port <= 65535);
  }
  FUZZ_CHECK(config.shard_count >= 1 && config.shard_index < config.shard_count);
  FUZZ_CHECK(config.max_inflight_per_child >= 1 && config.max_connections >= 1 && config.max_body >= 1);
  for (const auto& upstream : config.upstreams) FUZZ_CHECK(upstream.port >= 1 && upstream.port <= 65535);
  // The port layout check must answer for any count, without overflow.
  (void)coordinator::validate_port_layout(config, 1);
  (void)coordinator::validate_port_layout(config, 1000);
  (void)coordinator::assign_ports(config, 0);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The environment takes part in option parsing: start from none of it.
  for (const char* name :
       {"COORDINATOR_PROFILES", "COORDINATOR_LAUNCHER", "COORDINATOR_PYTHON", "COORDINATOR_HOST", "COORDINATOR_PORT",
        "BASE_API_PORT", "BASE_STREAM_PORT", "BASE_CAMOUFOX_PORT", "PORT_STEP", "COORDINATOR_LOG_DIR",
        "COORDINATOR_CONFIG", "COORDINATOR_API_KEYS_FILE", "COORDINATOR_LOG_FORMAT", "COORDINATOR_SHARD"}) {
    ::unsetenv(name);
  }
  std::atexit([] { std::remove(scratch_config_path().c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fuzz::as_view(data, size);
  const std::string text(input);
  check_config_file(input);
  check_upstream(text);
  check_byte_size(text);
  check_shard(text);
  check_command_line(input);
  return 0;
}
