// Usage accounting: key ids, token usage read from the children's answers, and
// the per-child, per-key book.
//
// What the real child (AIstudioProxyAPI) puts in `usage`, checked in:
//  - api_utils/utils_ext/tokens.py, calculate_usage_stats: the only source of
//    usage. An estimate, not the model's count: chars/4 (CJK chars/1.5), at least
//    1 for non-empty text, Python int(), so always non-negative integers, and
//    total_tokens = prompt_tokens + completion_tokens is always present.
//  - api_utils/response_payloads.py, build_chat_completion_response_json: the
//    non-streamed answer carries that dict as the top-level "usage" (called from
//    api_utils/request_processor.py, both answer paths).
//  - api_utils/response_generators.py, gen_sse_from_aux_stream: the usage goes
//    in one last chunk {"choices":[{"delta":{},"finish_reason":...}],"usage":{...}}
//    sent from a `finally`, so also after a failure (an estimate over the partial
//    text), followed by `data: [DONE]`; earlier chunks have no "usage" key.
//    gen_sse_from_playwright: the stop chunk carries it (api_utils/sse.py,
//    generate_sse_stop_chunk, "usage" only when given), in the same write as
//    `data: [DONE]`; its error path sends a stop chunk without usage.
// So: integers only from the real child; usage_from_* also take integral-valued or
// fractional floats (truncated) from other OpenAI-compatible servers, treat a
// string, negative or null field as absent, and compute a missing total. OpenAI's
// own streams send `"usage": null` on every chunk but the last: no usage.
#include "coordinator/usage.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "coordinator/metrics.hpp"
#include "coordinator/utc_time.hpp"

namespace coordinator {

namespace {

using json = nlohmann::json;

constexpr std::array<std::string_view, kStatusClassCount> kStatusClassNames{"2xx", "4xx", "5xx", "other"};

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t sum = a + b;
  return sum < a ? std::numeric_limits<std::uint64_t>::max() : sum;
}

// A count as JSON may hold it: a non-negative integer, or a finite non-negative
// float (truncated). Anything else is no count.
std::optional<std::uint64_t> read_count(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const auto signed_value = value.get<std::int64_t>();
    if (signed_value < 0) return std::nullopt;
    return static_cast<std::uint64_t>(signed_value);
  }
  if (value.is_number_float()) {
    const double number = value.get<double>();
    // 2^64 as a double: anything at or above it does not fit.
    if (!std::isfinite(number) || number < 0 || number >= 18446744073709551616.0) return std::nullopt;
    return static_cast<std::uint64_t>(number);
  }
  return std::nullopt;
}

std::uint64_t count_or_zero(const json& object, std::string_view name) {
  if (!object.is_object()) return 0;
  const auto found = object.find(name);
  if (found == object.end()) return 0;
  return read_count(*found).value_or(0);
}

std::optional<TokenUsage> usage_of(const json& usage) {
  if (!usage.is_object()) return std::nullopt;
  std::optional<std::uint64_t> fields[3];
  const std::string_view names[3] = {"prompt_tokens", "completion_tokens", "total_tokens"};
  for (int i = 0; i < 3; ++i) {
    const auto found = usage.find(names[i]);
    if (found != usage.end()) fields[i] = read_count(*found);
  }
  if (!fields[0] && !fields[1] && !fields[2]) return std::nullopt;
  TokenUsage result;
  result.prompt = fields[0].value_or(0);
  result.completion = fields[1].value_or(0);
  result.total = fields[2] ? *fields[2] : saturating_add(result.prompt, result.completion);
  return result;
}

// Parses `text` keeping only its top-level "usage" member: the rest of a large
// answer (the content) is read but never stored.
std::optional<TokenUsage> top_level_usage(std::string_view text) {
  try {
    const json::parser_callback_t only_usage = [](int depth, json::parse_event_t event, json& parsed) {
      if (depth != 1 || event != json::parse_event_t::key) return true;
      return parsed.is_string() && parsed.get_ref<const std::string&>() == "usage";
    };
    const json document = json::parse(text.begin(), text.end(), only_usage, /*allow_exceptions=*/false);
    if (!document.is_object()) return std::nullopt;
    const auto usage = document.find("usage");
    if (usage == document.end()) return std::nullopt;
    return usage_of(*usage);
  } catch (const std::exception&) {  // allocation failure: no usage rather than a crash
    return std::nullopt;
  }
}

json counts_json(const UsageBook::Counters& counters) {
  json requests = json::object();
  std::uint64_t all = 0;
  for (std::size_t i = 0; i < kStatusClassCount; ++i) {
    requests[std::string(kStatusClassNames[i])] = counters.requests[i];
    all = saturating_add(all, counters.requests[i]);
  }
  requests["all"] = all;
  return requests;
}

json tokens_json(const TokenUsage& tokens) {
  return {{"prompt", tokens.prompt}, {"completion", tokens.completion}, {"total", tokens.total}};
}

json counters_json(const UsageBook::Counters& counters) {
  return {{"requests", counts_json(counters)}, {"tokens", tokens_json(counters.tokens)}};
}

UsageBook::Counters counters_from_state(const json& state) {
  UsageBook::Counters counters;
  if (!state.is_object()) return counters;
  if (const auto requests = state.find("requests"); requests != state.end()) {
    for (std::size_t i = 0; i < kStatusClassCount; ++i)
      counters.requests[i] = count_or_zero(*requests, kStatusClassNames[i]);
  }
  if (const auto tokens = state.find("tokens"); tokens != state.end()) {
    counters.tokens = {count_or_zero(*tokens, "prompt"), count_or_zero(*tokens, "completion"),
                       count_or_zero(*tokens, "total")};
  }
  return counters;
}

json counters_state(const UsageBook::Counters& counters) {
  json requests = json::object();
  for (std::size_t i = 0; i < kStatusClassCount; ++i)
    requests[std::string(kStatusClassNames[i])] = counters.requests[i];
  return {{"requests", requests}, {"tokens", tokens_json(counters.tokens)}};
}

// One view of the book (totals or today): sums overall, by child and by key.
json usage_view(const UsageBook::Entries& entries, bool today) {
  UsageBook::Counters overall;
  std::map<std::string, UsageBook::Counters, std::less<>> by_child, by_key;
  for (const auto& [names, entry] : entries) {
    const UsageBook::Counters& counters = today ? entry.today : entry.totals;
    if (counters.empty()) continue;
    overall.add(counters);
    by_child[names.first].add(counters);
    by_key[names.second].add(counters);
  }
  json view = counters_json(overall);
  view["by_child"] = json::object();
  for (const auto& [child, counters] : by_child) view["by_child"][child] = counters_json(counters);
  view["by_key"] = json::object();
  for (const auto& [key, counters] : by_key) view["by_key"][key] = counters_json(counters);
  return view;
}

}  // namespace

std::string key_id(std::string_view api_key) {
  if (api_key.empty()) return std::string(kNoKeyId);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(api_key.data(), api_key.size(), digest, &digest_size, EVP_sha256(), nullptr) != 1 || digest_size < 4) {
    return "key-00000000";  // not reachable with a working libcrypto; still never the key
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "key-";
  for (int i = 0; i < 4; ++i) {
    id.push_back(kHex[digest[i] >> 4]);
    id.push_back(kHex[digest[i] & 0x0f]);
  }
  return id;
}

bool is_key_id(std::string_view text) {
  if (text == kNoKeyId) return true;
  if (text.size() != 12 || text.substr(0, 4) != "key-") return false;
  for (const char c : text.substr(4)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<TokenUsage> usage_from_answer(std::string_view json_body) {
  return top_level_usage(json_body);
}

std::optional<TokenUsage> usage_from_stream_chunk(std::string_view data_line_payload) {
  // Most chunks carry content only: skip parsing them (a "usage" key written with
  // JSON escapes, which no server does, would be missed).
  if (data_line_payload.find("\"usage\"") == std::string_view::npos) return std::nullopt;
  return top_level_usage(data_line_payload);
}

StatusClass status_class(unsigned status) {
  if (status >= 200 && status < 300) return StatusClass::s2xx;
  if (status >= 400 && status < 500) return StatusClass::s4xx;
  if (status >= 500 && status < 600) return StatusClass::s5xx;
  return StatusClass::other;
}

std::string_view to_string(StatusClass status_class) {
  return kStatusClassNames[static_cast<std::size_t>(status_class)];
}

bool UsageBook::Counters::empty() const {
  for (const auto count : requests) {
    if (count != 0) return false;
  }
  return tokens == TokenUsage{};
}

void UsageBook::Counters::add(const Counters& other) {
  for (std::size_t i = 0; i < kStatusClassCount; ++i) requests[i] = saturating_add(requests[i], other.requests[i]);
  tokens.prompt = saturating_add(tokens.prompt, other.tokens.prompt);
  tokens.completion = saturating_add(tokens.completion, other.tokens.completion);
  tokens.total = saturating_add(tokens.total, other.tokens.total);
}

UsageBook::Counters UsageBook::today_of_child(std::string_view child, time_point now) const {
  Counters sum;
  if (!day_ || utc_day(now) != *day_) return sum;  // nothing recorded yet on that day
  for (const auto& [names, entry] : entries_) {
    if (names.first == child) sum.add(entry.today);
  }
  return sum;
}

bool UsageBook::counts_today(time_point now) {
  const auto day = utc_day(now);
  if (!day_ || day > *day_) {
    // A new UTC day: yesterday's counts leave "today" (they stay in the totals).
    for (auto& [names, entry] : entries_) entry.today = {};
    day_ = day;
  }
  // A record dated before the current day (the clock stepped back) counts in the totals only.
  return day == *day_;
}

UsageBook::Entry& UsageBook::entry(std::string_view child, std::string_view key, time_point now) {
  if (!since_ || now < *since_) since_ = now;
  const std::string hashed = is_key_id(key) ? std::string() : key_id(key);
  const std::string_view stored_key = hashed.empty() ? key : std::string_view(hashed);
  auto found = entries_.find(std::make_pair(child, stored_key));
  if (found == entries_.end()) {
    found = entries_.emplace(std::make_pair(std::string(child), std::string(stored_key)), Entry{}).first;
  }
  return found->second;
}

void UsageBook::record_request(std::string_view child, std::string_view key, unsigned status, time_point now) {
  const bool today = counts_today(now);
  Counters one;
  one.requests[static_cast<std::size_t>(status_class(status))] = 1;
  Entry& counted = entry(child, key, now);
  counted.totals.add(one);
  if (today) counted.today.add(one);
}

void UsageBook::record_tokens(std::string_view child, std::string_view key, const TokenUsage& usage, time_point now) {
  const bool today = counts_today(now);
  Counters tokens;
  tokens.tokens = usage;
  Entry& counted = entry(child, key, now);
  counted.totals.add(tokens);
  if (today) counted.today.add(tokens);
}

nlohmann::json UsageBook::to_admin_json(time_point now) const {
  // Read-only: a day that has begun since the last record shows as empty.
  const auto viewed_day = day_ && *day_ > utc_day(now) ? *day_ : utc_day(now);
  const bool today_is_current = day_ && *day_ == viewed_day;
  json answer = json::object();
  answer["since"] = since_ ? json(format_utc(*since_)) : json(nullptr);
  answer["day"] = format_utc_day(viewed_day);
  answer["totals"] = usage_view(entries_, false);
  answer["today"] = today_is_current ? usage_view(entries_, true) : usage_view(Entries{}, true);
  return answer;
}

void UsageBook::append_prometheus(std::string& out) const {
  out += "# HELP coordinator_tokens_total Tokens the children reported in their answers' usage, by child and key.\n";
  out += "# TYPE coordinator_tokens_total counter\n";
  std::map<std::string_view, std::array<std::uint64_t, kStatusClassCount>> requests_by_key;
  for (const auto& [names, entry] : entries_) {
    const auto& [child, key] = names;
    const std::pair<std::string_view, std::uint64_t> kinds[] = {{"prompt", entry.totals.tokens.prompt},
                                                                {"completion", entry.totals.tokens.completion},
                                                                {"total", entry.totals.tokens.total}};
    for (const auto& [kind, count] : kinds) {
      out += "coordinator_tokens_total{child=\"";
      out += prometheus_label(child);
      out += "\",key=\"";
      out += prometheus_label(key);
      out += "\",kind=\"";
      out += kind;
      out += "\"} " + std::to_string(count) + '\n';
    }
    auto& by_key = requests_by_key[key];
    for (std::size_t i = 0; i < kStatusClassCount; ++i) by_key[i] = saturating_add(by_key[i], entry.totals.requests[i]);
  }
  out += "# HELP coordinator_requests_by_key_total Requests answered, by API key id and status class.\n";
  out += "# TYPE coordinator_requests_by_key_total counter\n";
  for (const auto& [key, counts] : requests_by_key) {
    for (std::size_t i = 0; i < kStatusClassCount; ++i) {
      out += "coordinator_requests_by_key_total{key=\"";
      out += prometheus_label(key);
      out += "\",class=\"";
      out += kStatusClassNames[i];
      out += "\"} " + std::to_string(counts[i]) + '\n';
    }
  }
}

nlohmann::json UsageBook::to_state() const {
  json state = json::object();
  state["since"] = since_ ? json(format_utc(*since_)) : json(nullptr);
  state["day"] = day_ ? json(format_utc_day(*day_)) : json(nullptr);
  json entries = json::array();
  for (const auto& [names, entry] : entries_) {
    entries.push_back({{"child", names.first},
                       {"key", names.second},
                       {"totals", counters_state(entry.totals)},
                       {"today", counters_state(entry.today)}});
  }
  state["entries"] = std::move(entries);
  return state;
}

UsageBook UsageBook::from_state(const nlohmann::json& state) {
  UsageBook book;
  try {
    if (!state.is_object()) return book;
    if (const auto since = state.find("since"); since != state.end() && since->is_string()) {
      book.since_ = parse_utc(since->get_ref<const std::string&>());
    }
    if (const auto day = state.find("day"); day != state.end() && day->is_string()) {
      book.day_ = parse_utc_day(day->get_ref<const std::string&>());
    }
    const auto entries = state.find("entries");
    if (entries == state.end() || !entries->is_array()) return book;
    for (const json& saved : *entries) {
      if (!saved.is_object()) continue;
      const auto child = saved.find("child");
      const auto key = saved.find("key");
      if (child == saved.end() || !child->is_string() || key == saved.end() || !key->is_string()) continue;
      const std::string& key_text = key->get_ref<const std::string&>();
      if (!is_key_id(key_text)) continue;  // never echo what might be a key
      Entry& restored = book.entries_[{child->get_ref<const std::string&>(), key_text}];
      if (const auto totals = saved.find("totals"); totals != saved.end())
        restored.totals.add(counters_from_state(*totals));
      // Today's counts mean nothing without the day they belong to.
      const auto today = saved.find("today");
      if (book.day_ && today != saved.end()) restored.today.add(counters_from_state(*today));
    }
  } catch (const std::exception&) {  // allocation failure: what was read so far
  }
  return book;
}

namespace {
constexpr std::string_view kUsageKey = "\"usage\"";
bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
}  // namespace

void UsageScanner::reset() {
  phase_ = Phase::seek;
  carry_.clear();
  object_size_ = 0;
  depth_ = 0;
  in_string_ = escaped_ = false;
  last_.reset();
}

void UsageScanner::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    switch (phase_) {
      case Phase::seek:
        seek(bytes);
        break;
      case Phase::colon:
      case Phase::open: {
        const char c = bytes.front();
        bytes.remove_prefix(1);
        if (is_json_space(c)) break;
        if (phase_ == Phase::colon) {
          phase_ = c == ':' ? Phase::open : Phase::seek;
        } else if (c == '{') {
          object_[0] = '{';
          object_size_ = 1;
          depth_ = 1;
          in_string_ = escaped_ = false;
          phase_ = Phase::object;
        } else {
          phase_ = Phase::seek;  // "usage": null, or a string that happens to say usage
        }
        break;
      }
      case Phase::object:
        read_object(bytes);
        break;
    }
  }
}

void UsageScanner::seek(std::string_view& bytes) {
  if (!carry_.empty()) {
    // The key may straddle two pieces: look at the carried bytes and the new ones together.
    std::string joined = carry_;
    joined.append(bytes.substr(0, kUsageKey.size() - 1));
    const std::size_t at = joined.find(kUsageKey);
    const std::size_t carried = carry_.size();
    carry_.clear();
    if (at != std::string::npos && at < carried) {
      bytes.remove_prefix(at + kUsageKey.size() - carried);
      phase_ = Phase::colon;
      return;
    }
    if (bytes.size() < kUsageKey.size()) {
      // Too short to hold the key itself: its bytes join the carry.
      carry_.assign(std::string_view(joined).substr(joined.size() - std::min(joined.size(), kUsageKey.size() - 1)));
      bytes = {};
      return;
    }
  }
  const std::size_t at = bytes.find(kUsageKey);
  if (at == std::string_view::npos) {
    carry_.assign(bytes.substr(bytes.size() - std::min(bytes.size(), kUsageKey.size() - 1)));
    bytes = {};
    return;
  }
  bytes.remove_prefix(at + kUsageKey.size());
  phase_ = Phase::colon;
}

// The object's bytes up to its closing brace, copied in one piece.
void UsageScanner::read_object(std::string_view& bytes) {
  std::size_t used = 0;
  bool closed = false;
  while (used < bytes.size() && !closed) {
    const char c = bytes[used++];
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{') {
      ++depth_;
    } else if (c == '}') {
      closed = --depth_ == 0;
    }
  }
  if (object_size_ + used > kMaxObject) {
    phase_ = Phase::seek;  // too large to be a usage object
    bytes.remove_prefix(used);
    return;
  }
  std::copy_n(bytes.data(), used, object_.data() + object_size_);
  object_size_ += used;
  bytes.remove_prefix(used);
  if (!closed) return;
  // A later chunk may carry newer usage: the last complete object wins.
  if (const auto usage = usage_from_object_text(std::string_view(object_.data(), object_size_))) last_ = usage;
  phase_ = Phase::seek;
}

namespace {

// The count after `"name":` in a usage object's text (the first such key).
std::optional<std::uint64_t> count_in(std::string_view object, std::string_view quoted_name) {
  std::size_t at = object.find(quoted_name);
  if (at == std::string_view::npos) return std::nullopt;
  at += quoted_name.size();
  while (at < object.size() && is_json_space(object[at])) ++at;
  if (at >= object.size() || object[at] != ':') return std::nullopt;
  ++at;
  while (at < object.size() && is_json_space(object[at])) ++at;
  const char* first = object.data() + at;
  const char* last = object.data() + object.size();
  std::uint64_t whole = 0;
  const auto [end, ec] = std::from_chars(first, last, whole);
  if (ec == std::errc{} && (end == last || (*end != '.' && *end != 'e' && *end != 'E'))) return whole;
  double number = 0;  // a float (truncated), or out of range for an integer
  const auto [float_end, float_ec] = std::from_chars(first, last, number);
  if (float_ec != std::errc{} || float_end == first) return std::nullopt;
  if (!std::isfinite(number) || number < 0 || number >= 18446744073709551616.0) return std::nullopt;
  return static_cast<std::uint64_t>(number);
}

}  // namespace

std::optional<TokenUsage> usage_from_object_text(std::string_view object) {
  const auto prompt = count_in(object, "\"prompt_tokens\"");
  const auto completion = count_in(object, "\"completion_tokens\"");
  const auto total = count_in(object, "\"total_tokens\"");
  if (!prompt && !completion && !total) return std::nullopt;
  TokenUsage usage;
  usage.prompt = prompt.value_or(0);
  usage.completion = completion.value_or(0);
  usage.total = total ? *total : saturating_add(usage.prompt, usage.completion);
  return usage;
}

}  // namespace coordinator
