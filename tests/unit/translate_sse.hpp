#pragma once

// Reads back the SSE bytes a stream translator wrote, for the translate tests.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace coordinator::translate::testing {

struct SseEvent {
  std::string name;  // "" for a data-only event (Gemini)
  nlohmann::json data;
};

// Splits `bytes` into events; each must be `[event: NAME\n]data: JSON\n\n`.
inline std::vector<SseEvent> parse_sse(const std::string& bytes) {
  std::vector<SseEvent> events;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const std::size_t end = bytes.find("\n\n", at);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unterminated event: " << bytes.substr(at);
      break;
    }
    std::string block = bytes.substr(at, end - at);
    at = end + 2;
    SseEvent event;
    if (block.rfind("event: ", 0) == 0) {
      const std::size_t line_end = block.find('\n');
      event.name = block.substr(7, line_end == std::string::npos ? std::string::npos : line_end - 7);
      block = line_end == std::string::npos ? std::string{} : block.substr(line_end + 1);
    }
    if (block.rfind("data: ", 0) != 0 || block.find('\n') != std::string::npos) {
      ADD_FAILURE() << "not one data line: " << block;
      continue;
    }
    event.data = nlohmann::json::parse(block.substr(6), nullptr, false);
    EXPECT_FALSE(event.data.is_discarded()) << block;
    events.push_back(std::move(event));
  }
  return events;
}

inline std::vector<std::string> names_of(const std::vector<SseEvent>& events) {
  std::vector<std::string> names;
  for (const auto& event : events) names.push_back(event.name);
  return names;
}

}  // namespace coordinator::translate::testing
