#pragma once

#include <string>
#include <variant>

#include "coordinator/config.hpp"

namespace coordinator {

// What parsing the command line decided: run with a Config, or exit at once
// (--help, or a refused value) with a message for stdout or stderr.
struct ExitRequest {
  int code = 0;
  std::string message;
};
using ParseOutcome = std::variant<Config, ExitRequest>;

// The command line (CLI11), then the environment, then the --config file,
// then the defaults: one Config.
ParseOutcome parse_command_line(int argc, const char* const* argv);

}  // namespace coordinator
