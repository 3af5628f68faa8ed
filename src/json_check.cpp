#include "coordinator/json_check.hpp"

#include <array>
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
// what the coordinator needs: the top-level type, the top-level "stream" and the
// top-level "model" string (as a view into the text: the request outlives it).
// A repeated key: the last one wins, as in the child's parser (Python's json).
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
    if (top_is_object_ && has_model_) {
      result.has_model = true;
      result.model = model_;
      result.model_escaped = model_escaped_;
    }
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
      const bool model_value = key_is_model_;
      key_is_stream_ = false;
      key_is_model_ = false;
      const char c = *p_;
      if (model_value) has_model_ = false;  // until the value proves to be a string
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
          const char* const open = p_;
          StringFacts facts;
          if (!string(model_value ? &facts : nullptr)) return false;
          if (model_value) {
            has_model_ = true;
            model_ = std::string_view(open + 1, static_cast<std::size_t>(p_ - open) - 2);
            model_escaped_ = facts.escaped;
          }
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

  // A member's name and its ':'; notes a top-level "stream" or "model".
  bool key() {
    skip_ws();
    if (p_ == end_ || *p_ != '"') return false;
    StringFacts facts;
    if (!string(&facts)) return false;
    skip_ws();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    key_is_stream_ = depth_ == 1 && facts.is_stream;
    key_is_model_ = depth_ == 1 && facts.is_model;
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

  // The escape after a backslash (p_ just past it): what it decodes to, 0x100
  // for anything past ASCII (only ASCII is compared with key names).
  bool escape(unsigned& code) {
    if (p_ == end_) return false;
    const char e = *p_++;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        code = static_cast<unsigned char>(e);
        return true;
      case 'b':
        code = '\b';
        return true;
      case 'f':
        code = '\f';
        return true;
      case 'n':
        code = '\n';
        return true;
      case 'r':
        code = '\r';
        return true;
      case 't':
        code = '\t';
        return true;
      case 'u': {
        if (!hex4(code)) return false;
        if (code >= 0xDC00 && code <= 0xDFFF) return false;  // a low surrogate alone
        if (code >= 0xD800 && code <= 0xDBFF) {
          unsigned low = 0;
          if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
          p_ += 2;
          if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
        }
        if (code >= 0x80) code = 0x100;
        return true;
      }
      default:
        return false;
    }
  }

  // A UTF-8 sequence of two to four bytes at p_, lead byte `c`: well formed
  // (RFC 3629, as nlohmann checks it).
  bool utf8_sequence(unsigned c) {
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
    p_ += more + 1;
    return true;
  }

  // Bytes that stand for themselves in a JSON string: ASCII but for '"', '\\'
  // and the control characters.
  static constexpr std::array<bool, 256> kPlainStringByte = [] {
    std::array<bool, 256> plain{};
    for (unsigned c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
    return plain;
  }();

  // What string() learns of a string besides its validity.
  struct StringFacts {
    bool is_stream = false;  // its decoded text is "stream"
    bool is_model = false;   // its decoded text is "model"
    bool escaped = false;    // it holds a backslash escape
  };

  // A string at p_ (on its '"'). With `facts`, what it decodes to (see StringFacts).
  bool string(StringFacts* facts) {
    static constexpr std::string_view kStream = "stream";
    static constexpr std::string_view kModel = "model";
    ++p_;
    std::size_t decoded = 0;  // decoded bytes compared with "stream" and "model" so far
    bool same_stream = true;
    bool same_model = true;
    const auto note = [&](unsigned code) {
      if (facts == nullptr) return;
      if (decoded >= kStream.size() || code != static_cast<unsigned char>(kStream[decoded])) same_stream = false;
      if (decoded >= kModel.size() || code != static_cast<unsigned char>(kModel[decoded])) same_model = false;
      ++decoded;
    };
    // Past its seventh byte a string can be neither word: the rest only counts.
    const auto note_run = [&](const char* from, const char* to) {
      if (facts == nullptr) return;
      for (; from != to && decoded <= kStream.size(); ++from) note(byte(*from));
      decoded += static_cast<std::size_t>(to - from);
    };
    while (true) {
      // A run of plain ASCII first, a table lookup a byte: the bulk of any string.
      const char* const run = p_;
      while (p_ != end_ && kPlainStringByte[byte(*p_)]) ++p_;
      note_run(run, p_);
      if (p_ == end_) return false;
      const unsigned c = byte(*p_);
      if (c == '"') {
        ++p_;
        break;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (facts != nullptr) facts->escaped = true;
        ++p_;
        unsigned code = 0;
        if (!escape(code)) return false;
        note(code);
      } else if (c < 0x80) {
        note(c);
        ++p_;
      } else {
        if (!utf8_sequence(c)) return false;
        note(0x100);  // not ASCII: cannot be part of "stream" or "model"
      }
    }
    if (facts != nullptr) {
      facts->is_stream = same_stream && decoded == kStream.size();
      facts->is_model = same_model && decoded == kModel.size();
    }
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
  bool key_is_model_ = false;
  bool too_deep_ = false;
  bool top_is_object_ = false;
  bool stream_ = false;
  bool has_model_ = false;
  bool model_escaped_ = false;
  std::string_view model_;
};

// Appends code point `code` as UTF-8.
void append_utf8(std::string& out, unsigned code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

unsigned hex4_at(std::string_view text, std::size_t at) {
  unsigned code = 0;
  for (std::size_t i = at; i < at + 4 && i < text.size(); ++i) {
    const char c = text[i];
    const unsigned digit = c <= '9' ? static_cast<unsigned>(c - '0') : static_cast<unsigned>((c | 0x20) - 'a' + 10);
    code = code * 16 + digit;
  }
  return code;
}

// Decodes the escapes of a string body the scanner accepted.
std::string decode_checked_string(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out += raw[i];
      continue;
    }
    const char e = raw[++i];
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned code = hex4_at(raw, i + 1);
        i += 4;
        if (code >= 0xD800 && code <= 0xDBFF && i + 6 < raw.size()) {  // the scanner saw its \uDCxx
          const unsigned low = hex4_at(raw, i + 3);
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          i += 6;
        }
        append_utf8(out, code);
        break;
      }
      default:  // '"', '\\', '/'
        out += e;
        break;
    }
  }
  return out;
}

}  // namespace

std::string_view model_text(const JsonCheck& check, std::string& storage) {
  if (!check.has_model) return {};
  if (!check.model_escaped) return check.model;
  storage = decode_checked_string(check.model);
  return storage;
}

JsonCheck check_json(std::string_view text, std::size_t max_depth) {
  return Scanner(text, max_depth).run();
}

}  // namespace coordinator
