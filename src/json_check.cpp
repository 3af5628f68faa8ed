#include "coordinator/json_check.hpp"

#include <nlohmann/json.hpp>

namespace coordinator {

namespace {

// SAX handler that records only what the coordinator needs: depth, the
// top-level type and the top-level "stream" flag.
class CheckingSax final : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit CheckingSax(std::size_t max_depth) : max_depth_(max_depth) {}

  bool null() override { return scalar(false); }
  bool boolean(bool value) override { return scalar(value); }
  bool number_integer(number_integer_t) override { return scalar(false); }
  bool number_unsigned(number_unsigned_t) override { return scalar(false); }
  bool number_float(number_float_t, const string_t&) override { return scalar(false); }
  bool string(string_t&) override { return scalar(false); }
  bool binary(binary_t&) override { return scalar(false); }

  bool start_object(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }

  bool key(string_t& name) override {
    key_is_stream_ = depth_ == 1 && name == "stream";
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) override {
    error_ = "invalid JSON at byte " + std::to_string(position);
    return false;
  }

  bool too_deep() const { return too_deep_; }
  bool top_is_object() const { return top_is_object_; }
  bool stream_requested() const { return stream_requested_; }
  const std::string& error() const { return error_; }

 private:
  bool scalar(bool is_true) {
    if (key_is_stream_ && depth_ == 1) stream_requested_ = is_true;
    key_is_stream_ = false;
    return true;
  }
  bool open(bool is_object) {
    if (depth_ == 0) top_is_object_ = is_object;
    // A later duplicate "stream" key wins, as in the children's JSON parser.
    if (key_is_stream_ && depth_ == 1) stream_requested_ = false;
    key_is_stream_ = false;
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      error_ = "JSON nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  std::size_t max_depth_;
  std::size_t depth_ = 0;
  bool key_is_stream_ = false;
  bool too_deep_ = false;
  bool top_is_object_ = false;
  bool stream_requested_ = false;
  std::string error_;
};

}  // namespace

JsonCheck check_json(std::string_view text, std::size_t max_depth) {
  CheckingSax sax(max_depth);
  JsonCheck result;
  const bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax, nlohmann::json::input_format_t::json,
                                            /*strict=*/true, /*ignore_comments=*/false);
  result.valid = ok && !sax.too_deep();
  result.is_object = result.valid && sax.top_is_object();
  result.stream_requested = result.is_object && sax.stream_requested();
  if (!result.valid) result.error = sax.error().empty() ? "invalid JSON" : sax.error();
  return result;
}

}  // namespace coordinator
