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
  // The top-level "model" when it is a string (the last one when repeated, as
  // the child reads it; one inside a sub-object does not count): its text as
  // written between the quotes, a view into the checked text.
  bool has_model = false;
  std::string_view model;
  bool model_escaped = false;  // `model` holds backslash escapes: read it with model_text
  std::string error;           // why it is not valid; never quotes the input
};

// The top-level "model" decoded: `check.model` itself when it has no escapes
// (no copy), else its decoded text in `storage`. Empty without a model.
std::string_view model_text(const JsonCheck& check, std::string& storage);

// Validates `text` as JSON with nesting capped at `max_depth`, so hostile
// input cannot exhaust the stack or memory.
JsonCheck check_json(std::string_view text, std::size_t max_depth = 128);

}  // namespace coordinator
