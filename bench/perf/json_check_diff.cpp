#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include "coordinator/json_check.hpp"
using namespace coordinator;
// Reference: the SAX semantics of the previous check_json, via nlohmann's DOM.
static int fails = 0;
static void check(const std::string& t) {
  const auto got = check_json(t, std::numeric_limits<std::size_t>::max());
  const bool acc = nlohmann::json::accept(t);
  bool ok = got.valid == acc;
  if (ok && acc) {
    auto dom = nlohmann::json::parse(t);
    bool stream = dom.is_object() && dom.contains("stream") && dom["stream"] == true;
    ok = got.is_object == dom.is_object() && got.stream_requested == stream;
    // The top-level "model" string, as the relay routes by it.
    const bool model = dom.is_object() && dom.contains("model") && dom["model"].is_string();
    std::string storage;
    if (ok && model) ok = got.has_model && model_text(got, storage) == dom["model"].get<std::string>();
  }
  if (!ok && fails++ < 10) {
    std::printf("MISMATCH valid=%d accept=%d: ", got.valid, acc);
    for (unsigned char c : t.substr(0, 200)) std::printf(c >= 32 && c < 127 ? "%c" : "\\x%02x", c);
    std::printf("\n");
  }
}
int main(int argc, char** argv) {
  std::vector<std::string> seeds = {
      R"({"model":"m","messages":[{"role":"user","content":"hi \u00e9 \ud83d\ude00"}],"stream":true,"temperature":0.7,"n":1e5})",
      "[1,2,3]",
      "\xEF\xBB\xBF{\"stream\":true}",
      "{\"str\\u0065am\":true}",
      "1e400",
      "-0.0e-400",
      "\"\\uD800\"",
      "\"\\uDC00\"",
      "\"\\uD800\\uDC00\"",
      "{\"a\":[{},[],\"x\",null,false,true,-12.5E+3]}",
      "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"",
      "\"\xED\xA0\x80\"",
      "\"\xF4\x90\x80\x80\"",
      "\"\xC0\xAF\"",
      "  {  }  ",
      R"({"model":"gemini-2.5-pro","messages":[{"role":"user","content":"a longer content string"}]})",
      R"({"mod\u0065l":"gem\u0069ni-2.5\"pro","model":"x","m":{"model":"inner"}})"};
  for (int i = 1; i < argc; ++i)
    for (auto& e : std::filesystem::recursive_directory_iterator(argv[i]))
      if (e.is_regular_file()) {
        std::ifstream f(e.path(), std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        seeds.push_back(ss.str());
      }
  for (auto& s : seeds) check(s);
  std::mt19937 rng(42);
  const std::string alphabet =
      "{}[]\",:\\/ \t\r\n0123456789.-+eEtrufalsnmod\x7f\x80\xBF\xC2\xE0\xED\xEF\xBB\xF0\xF4\xFFu";
  long n = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(40)) {
    std::string s = seeds[rng() % seeds.size()];
    int k = 1 + rng() % 4;
    for (int j = 0; j < k; ++j) {
      if (s.empty()) {
        s.push_back(alphabet[rng() % alphabet.size()]);
        continue;
      }
      size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          s.erase(pos, 1);
      }
    }
    check(s);
    ++n;
  }
  std::printf("cases %ld mismatches %d\n", n + (long)seeds.size(), fails);
  return fails != 0;
}
