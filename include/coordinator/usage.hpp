#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace coordinator {

// Usage accounting (issue 14): requests and tokens per child and per API key,
// since the counters began and for the current UTC day. No I/O, no clock reads:
// every record call is given `now`, and the state file keeps the book across
// restarts (to_state / from_state).

// The id under which a request that presented no key (or an empty one) is counted.
inline constexpr std::string_view kNoKeyId = "none";

// "key-" + the first 8 hex digits of the key's SHA-256: tells keys apart in
// counters and admin answers without revealing them. kNoKeyId for an empty key.
std::string key_id(std::string_view api_key);

// True for what key_id returns ("none" or "key-" + 8 lower-case hex digits).
bool is_key_id(std::string_view text);

struct TokenUsage {
  std::uint64_t prompt = 0;
  std::uint64_t completion = 0;
  std::uint64_t total = 0;
  bool operator==(const TokenUsage&) const = default;
};

// The `usage` of an OpenAI chat.completion answer body ({prompt_tokens,
// completion_tokens, total_tokens}); total is prompt + completion when absent.
// nullopt when the body is no JSON object or carries no usable `usage`.
std::optional<TokenUsage> usage_from_answer(std::string_view json_body);

// The same for the payload of one SSE `data:` line (the text after "data:").
// Only a chunk that carries `usage` counts; `[DONE]` and garbage give nullopt.
std::optional<TokenUsage> usage_from_stream_chunk(std::string_view data_line_payload);

// Finds the last `"usage": {...}` object of an answer fed to it piece by piece
// (a JSON body, or an SSE stream whose last chunk carries it), without keeping
// the answer: only the object itself is held (at most kMaxObject bytes, in
// place: no allocation per answer), and its counts are read without a JSON
// parser (this runs for every answer; usage_from_answer is the full check).
class UsageScanner {
 public:
  static constexpr std::size_t kMaxObject = 1024;

  void feed(std::string_view bytes);
  // The tokens of the last complete object found.
  std::optional<TokenUsage> result() const { return last_; }
  void reset();

 private:
  enum class Phase { seek, colon, open, object };
  void seek(std::string_view& bytes);
  void read_object(std::string_view& bytes);

  Phase phase_ = Phase::seek;
  std::string carry_;  // the last bytes of a piece that may begin the key
  std::array<char, kMaxObject> object_;
  std::size_t object_size_ = 0;
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
  std::optional<TokenUsage> last_;
};

// The counts of one usage object's text ({"prompt_tokens": N, ...}), as
// usage_from_answer reads them: non-negative numbers (floats truncated), total
// computed when absent; nothing when none of the three is a count.
std::optional<TokenUsage> usage_from_object_text(std::string_view object);

// The class a request's final status is counted under. 0 stands for "no status"
// (the client went away or the request was cancelled before an answer).
enum class StatusClass : std::size_t { s2xx, s4xx, s5xx, other };
inline constexpr std::size_t kStatusClassCount = 4;
StatusClass status_class(unsigned status);
std::string_view to_string(StatusClass status_class);

// Counters per (child, key id).
//
// GET /admin/usage body (to_admin_json):
//   {
//     "since": "2024-05-01T12:00:00.000Z" | null,   // first record ever (kept across restarts)
//     "day": "2024-05-02",                          // the UTC day "today" counts
//     "totals": USAGE,                              // since the counters began
//     "today": USAGE                                // since UTC midnight of "day"
//   }
//   USAGE = { "requests": COUNTS, "tokens": TOKENS,
//             "by_child": { CHILD: { "requests": COUNTS, "tokens": TOKENS }, ... },
//             "by_key":   { KEY_ID: { "requests": COUNTS, "tokens": TOKENS }, ... } }
//   COUNTS = { "2xx": N, "4xx": N, "5xx": N, "other": N, "all": N }
//   TOKENS = { "prompt": N, "completion": N, "total": N }
// A child or key with nothing counted today is absent from today's maps.
//
// Counters saturate at 2^64-1 instead of wrapping. A key id that is not of
// key_id's form is hashed again before it is stored, so a raw key passed by
// mistake never reaches an output. Child names are the caller's (profile names);
// dump the admin JSON with error_handler_t::replace, as names may be any bytes.
class UsageBook {
 public:
  using time_point = std::chrono::system_clock::time_point;

  // One request, with the final status its client got (0: none).
  void record_request(std::string_view child, std::string_view key, unsigned status, time_point now);
  // The tokens one answer reported (usage_from_answer / usage_from_stream_chunk).
  void record_tokens(std::string_view child, std::string_view key, const TokenUsage& usage, time_point now);

  nlohmann::json to_admin_json(time_point now) const;

  // Appends coordinator_tokens_total{child,key,kind} and
  // coordinator_requests_by_key_total{key,class} (since the counters began),
  // with their HELP and TYPE lines, in the Prometheus text format.
  void append_prometheus(std::string& out) const;

  // For the state file. from_state never throws: parts that do not parse are skipped.
  nlohmann::json to_state() const;
  static UsageBook from_state(const nlohmann::json& state);

  struct Counters {
    std::array<std::uint64_t, kStatusClassCount> requests{};
    TokenUsage tokens;
    bool empty() const;
    void add(const Counters& other);
  };
  struct Entry {
    Counters totals;
    Counters today;
  };
  // (child, key id), found without building strings for each record.
  struct EntryKeyLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      const std::string_view a_child = a.first, b_child = b.first;
      if (a_child != b_child) return a_child < b_child;
      return std::string_view(a.second) < std::string_view(b.second);
    }
  };
  using Entries = std::map<std::pair<std::string, std::string>, Entry, EntryKeyLess>;
  // Read access for tests and other views: (child, key id) → counters.
  const Entries& entries() const { return entries_; }
  // One child's counts of the UTC day of `now`, every key together (/ready, the status page).
  Counters today_of_child(std::string_view child, time_point now) const;

 private:
  Entry& entry(std::string_view child, std::string_view key, time_point now);
  // True when `now` falls on the current day (after rolling it forward if needed).
  bool counts_today(time_point now);

  Entries entries_;
  std::optional<time_point> since_;
  std::optional<std::chrono::sys_days> day_;  // the day `today` counts; unset before any record
};

}  // namespace coordinator
