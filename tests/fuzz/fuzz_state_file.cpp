// The state file read back at start (issue 14), and the usage read from answers:
//  - parse_state never crashes; a refusal is one short line that never quotes
//    the input; an accepted file written back (to_json) reads back without a
//    skipped part, and after that one normalisation (milliseconds, ended
//    cooldowns dropped) writing and reading again changes nothing;
//  - UsageBook::from_state of any "usage" part: to_state is stable after one
//    round, and no key field in any output is anything but a key id;
//  - usage_from_answer / usage_from_stream_chunk on the input: no crash, a total
//    at least as large as its parts when the input gave no total;
//  - parse_utc: an accepted time formats back to the same instant (to the ms).
// Input: the whole input is the file / answer body / chunk payload / timestamp.
#include <nlohmann/json.hpp>

#include "coordinator/state_file.hpp"
#include "coordinator/usage.hpp"
#include "coordinator/utc_time.hpp"
#include "fuzz_util.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const auto kNow = std::chrono::sys_days{std::chrono::year{2024} / 5 / 1} + 12h;

std::string text_of(const json& document) {
  return document.dump(1, ' ', false, json::error_handler_t::replace);
}

void check_usage_book(const json& usage) {
  const coordinator::UsageBook once = coordinator::UsageBook::from_state(usage);
  const json state = once.to_state();
  const json again = coordinator::UsageBook::from_state(json::parse(text_of(state))).to_state();
  FUZZ_CHECK(again == state);
  for (const auto& [names, entry] : once.entries()) FUZZ_CHECK(coordinator::is_key_id(names.second));
  const json admin = once.to_admin_json(kNow);
  for (const char* view : {"totals", "today"}) {
    for (const auto& [key, counters] : admin[view]["by_key"].items()) FUZZ_CHECK(coordinator::is_key_id(key));
  }
  std::string metrics;
  once.append_prometheus(metrics);
  FUZZ_CHECK(metrics.rfind("# HELP coordinator_tokens_total ", 0) == 0);
}

void check_state_file(std::string_view input) {
  const coordinator::ParsedState first = coordinator::parse_state(input, kNow);
  if (!first.state) {
    FUZZ_CHECK(!first.refusal.empty() && first.refusal.size() < 120);
    FUZZ_CHECK(first.refusal.find('\n') == std::string::npos);
    return;
  }
  const coordinator::ParsedState second = coordinator::parse_state(text_of(coordinator::to_json(*first.state)), kNow);
  FUZZ_CHECK(second.state && second.skipped.empty());
  FUZZ_CHECK(second.state->profiles.size() == first.state->profiles.size());
  const std::string written = text_of(coordinator::to_json(*second.state));
  const coordinator::ParsedState third = coordinator::parse_state(written, kNow);
  FUZZ_CHECK(third.state && third.skipped.empty());
  FUZZ_CHECK(third.state->profiles == second.state->profiles);
  FUZZ_CHECK(text_of(coordinator::to_json(*third.state)) == written);
  for (const auto& note : first.skipped) {
    for (const char c : note) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
  }
  check_usage_book(first.state->usage);
}

void check_usage(std::string_view input) {
  for (const auto& usage : {coordinator::usage_from_answer(input), coordinator::usage_from_stream_chunk(input)}) {
    if (!usage) continue;
    // (A name spelt with escapes, "\u0074otal_tokens", would hide a given total.)
    if (input.find("total_tokens") == std::string_view::npos && input.find('\\') == std::string_view::npos) {
      FUZZ_CHECK(usage->total >= usage->prompt && usage->total >= usage->completion);
    }
  }
  if (input.find("\"usage\"") == std::string_view::npos) FUZZ_CHECK(!coordinator::usage_from_stream_chunk(input));
}

void check_time(std::string_view input) {
  const auto when = coordinator::parse_utc(input);
  if (!when) return;
  const auto millis = std::chrono::floor<std::chrono::milliseconds>(*when);
  FUZZ_CHECK(coordinator::parse_utc(coordinator::format_utc(*when)) == millis);
  FUZZ_CHECK(coordinator::format_utc_day(coordinator::utc_day(*when)) == input.substr(0, 10));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fuzz::as_view(data, size);
  check_state_file(input);
  check_usage(input);
  check_time(input);
  return 0;
}
