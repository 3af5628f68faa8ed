#pragma once

#include "coordinator/config.hpp"

namespace coordinator {

// Runs the coordinator until SIGTERM/SIGINT; returns the process exit code.
int run(const Config& config);

// Entry point used by main(): parse the command line, then run.
int main_entry(int argc, const char* const* argv);

}  // namespace coordinator
