#pragma once

// parse_command_line over a list of arguments, for the tests of flags.

#include <string>
#include <vector>

#include "coordinator/cli.hpp"

namespace coordinator::cli_test {

inline ParseOutcome parse(std::vector<std::string> args) {
  args.insert(args.begin(), "coordinator");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

}  // namespace coordinator::cli_test
