#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace coordinator {

// Result of checking an untrusted JSON document without building it in memory.
struct JsonCheck {
  bool valid = false;
  bool is_object = false;
  bool stream_requested = false;  // top-level "stream": true
  std::string error;              // why it is not valid; never quotes the input
};

// Validates `text` as JSON with nesting capped at `max_depth`, so hostile
// input cannot exhaust the stack or memory.
JsonCheck check_json(std::string_view text, std::size_t max_depth = 128);

}  // namespace coordinator
