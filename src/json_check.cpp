#include "coordinator/json_check.hpp"

#include <bitset>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <vector>

namespace coordinator {

namespace {

// A validating scan of RFC 8259 JSON that accepts exactly what nlohmann's
// strict parser (json::accept) accepts — a leading UTF-8 BOM, well-formed
// UTF-8 in strings, paired \u surrogates, finite numbers — and learns only
// what the coordinator needs: the top-level type and the top-level "stream".
// One pass, no allocation for ordinary bodies (nesting deeper than 1024 or a
// number that overflows or underflows a double take a slower path).
class Scanner {
 public:
  Scanner(std::string_view text, std::size_t max_depth)
      : p_(text.data()), end_(text.data() + text.size()), max_depth_(max_depth) {}

  JsonCheck run() {
    JsonCheck result;
    const char* const begin = p_;
    if (p_ != end_ && byte(*p_) == 0xEF) {
      if (end_ - p_ < 3 || byte(p_[1]) != 0xBB || byte(p_[2]) != 0xBF) return fail(result, begin);
      p_ += 3;
    }
    if (!document()) return fail(result, begin);
    skip_ws();
    if (p_ != end_) return fail(result, begin);
    result.valid = true;
    result.is_object = top_is_object_;
    result.stream_requested = top_is_object_ && stream_;
    return result;
  }

 private:
  static unsigned byte(char c) { return static_cast<unsigned char>(c); }

  JsonCheck fail(JsonCheck& result, const char* begin) const {
    result = JsonCheck{};
    result.error = too_deep_ ? "JSON nested deeper than " + std::to_string(max_depth_) + " levels"
                             : "invalid JSON at byte " + std::to_string(p_ - begin);
    return result;
  }

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // Container kinds by depth: a bitset on the stack, a vector past it.
  static constexpr std::size_t kInline = 1024;
  void set_kind(std::size_t depth, bool is_object) {
    if (depth < kInline) {
      inline_kinds_[depth] = is_object;
      return;
    }
    if (deep_kinds_.size() <= depth - kInline) deep_kinds_.resize(depth - kInline + 1);
    deep_kinds_[depth - kInline] = is_object;
  }
  bool kind(std::size_t depth) const { return depth < kInline ? inline_kinds_[depth] : deep_kinds_[depth - kInline]; }

  // The whole document, iteratively: `depth_` open containers, their kinds in the bitset.
  bool document() {
    // A value is expected; after it, a ',' or the container's end.
    while (true) {
      skip_ws();
      if (p_ == end_) return false;
      const bool stream_value = key_is_stream_;
      key_is_stream_ = false;
      const char c = *p_;
      if (c == '{' || c == '[') {
        const bool is_object = c == '{';
        ++p_;
        if (depth_ == 0) top_is_object_ = is_object;
        if (stream_value) stream_ = false;
        if (++depth_ > max_depth_) {
          too_deep_ = true;
          return false;
        }
        set_kind(depth_, is_object);
        skip_ws();
        if (p_ == end_) return false;
        if (*p_ == (is_object ? '}' : ']')) {
          ++p_;
          --depth_;
        } else {
          if (is_object && !key()) return false;
          continue;  // the first member's value, or the first element
        }
      } else {
        bool is_true = false;
        if (c == '"') {
          if (!string(nullptr)) return false;
        } else if (c == 't') {
          if (!literal("true")) return false;
          is_true = true;
        } else if (c == 'f') {
          if (!literal("false")) return false;
        } else if (c == 'n') {
          if (!literal("null")) return false;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
          if (!number()) return false;
        } else {
          return false;
        }
        if (stream_value) stream_ = is_true;
      }
      // After a value: close containers or move to the next member/element.
      while (true) {
        if (depth_ == 0) return true;
        skip_ws();
        if (p_ == end_) return false;
        const bool in_object = kind(depth_);
        if (*p_ == ',') {
          ++p_;
          if (in_object && !key()) return false;
          break;
        }
        if (*p_ != (in_object ? '}' : ']')) return false;
        ++p_;
        --depth_;
      }
    }
  }

  // A member's name and its ':'; notes a top-level "stream".
  bool key() {
    skip_ws();
    if (p_ == end_ || *p_ != '"') return false;
    bool is_stream = false;
    if (!string(&is_stream)) return false;
    skip_ws();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    key_is_stream_ = depth_ == 1 && is_stream;
    return true;
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(unsigned& code) {
    if (end_ - p_ < 4) return false;
    code = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex(p_[i]);
      if (h < 0) return false;
      code = code * 16 + static_cast<unsigned>(h);
    }
    p_ += 4;
    return true;
  }

  // A string at p_ (on its '"'). With `equals_stream`, whether its decoded text is "stream".
  bool string(bool* equals_stream) {
    static constexpr std::string_view kStream = "stream";
    ++p_;
    std::size_t decoded = 0;  // decoded bytes compared with "stream" so far
    bool same = true;
    const auto note = [&](unsigned code) {
      if (equals_stream == nullptr || !same) return;
      if (decoded >= kStream.size() || code != static_cast<unsigned char>(kStream[decoded])) same = false;
      ++decoded;
    };
    while (true) {
      if (p_ == end_) return false;
      const unsigned c = byte(*p_);
      if (c == '"') {
        ++p_;
        break;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++p_;
        if (p_ == end_) return false;
        const char e = *p_++;
        switch (e) {
          case '"':
            note('"');
            break;
          case '\\':
            note('\\');
            break;
          case '/':
            note('/');
            break;
          case 'b':
            note('\b');
            break;
          case 'f':
            note('\f');
            break;
          case 'n':
            note('\n');
            break;
          case 'r':
            note('\r');
            break;
          case 't':
            note('\t');
            break;
          case 'u': {
            unsigned code = 0;
            if (!hex4(code)) return false;
            if (code >= 0xDC00 && code <= 0xDFFF) return false;  // a low surrogate alone
            if (code >= 0xD800 && code <= 0xDBFF) {
              unsigned low = 0;
              if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
              p_ += 2;
              if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            }
            // Not ASCII: cannot be part of "stream" (a byte count mismatch is enough).
            if (code < 0x80) {
              note(code);
            } else {
              note(0x100);
            }
            break;
          }
          default:
            return false;
        }
        continue;
      }
      if (c < 0x80) {
        note(c);
        ++p_;
        continue;
      }
      // UTF-8, well formed (RFC 3629, as nlohmann checks it).
      std::size_t more = 0;
      unsigned lo = 0x80;
      unsigned hi = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        more = 1;
      } else if (c == 0xE0) {
        more = 2, lo = 0xA0;
      } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        more = 2;
      } else if (c == 0xED) {
        more = 2, hi = 0x9F;
      } else if (c == 0xF0) {
        more = 3, lo = 0x90;
      } else if (c >= 0xF1 && c <= 0xF3) {
        more = 3;
      } else if (c == 0xF4) {
        more = 3, hi = 0x8F;
      } else {
        return false;
      }
      if (static_cast<std::size_t>(end_ - p_) <= more) return false;
      for (std::size_t i = 1; i <= more; ++i) {
        const unsigned next = byte(p_[i]);
        if (next < (i == 1 ? lo : 0x80) || next > (i == 1 ? hi : 0xBF)) return false;
      }
      note(0x100);
      p_ += more + 1;
    }
    if (equals_stream != nullptr) *equals_stream = same && decoded == kStream.size();
    return true;
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  // A number; refused, as nlohmann refuses it, when it does not fit a double.
  bool number() {
    const char* const start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ != end_ && digit(*p_)) ++p_;
    } else {
      return false;
    }
    bool integer = true;
    if (p_ != end_ && *p_ == '.') {
      integer = false;
      ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ != end_ && digit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ != end_ && digit(*p_)) ++p_;
    }
    const std::size_t digits = static_cast<std::size_t>(p_ - start) - (*start == '-' ? 1 : 0);
    if (integer && digits <= 19) return true;  // an int64 or uint64, or a double far from overflow
    double parsed = 0;
    const auto [end, error] = std::from_chars(start, p_, parsed);
    if (error == std::errc{} && end == p_) return std::isfinite(parsed);
    // Out of range (overflow or underflow): nlohmann's own test, strtod, decides.
    const std::string copy(start, p_);
    return std::isfinite(std::strtod(copy.c_str(), nullptr));
  }

  const char* p_;
  const char* const end_;
  const std::size_t max_depth_;
  std::size_t depth_ = 0;
  std::bitset<kInline> inline_kinds_;
  std::vector<bool> deep_kinds_;
  bool key_is_stream_ = false;
  bool too_deep_ = false;
  bool top_is_object_ = false;
  bool stream_ = false;
};

}  // namespace

JsonCheck check_json(std::string_view text, std::size_t max_depth) {
  return Scanner(text, max_depth).run();
}

}  // namespace coordinator
