#include "coordinator/model_catalog.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace coordinator;

namespace {

// Answers as the real child writes them: api_utils/routers/models.py returns
// {"object":"list","data":state.parsed_model_list}, whose entries
// browser_utils/operations_modules/parsers.py builds (ids without "models/"),
// or its one fallback entry while the page has delivered no list.
constexpr std::string_view kRealList = R"({"object": "list", "data": [
  {"id": "gemini-2.5-flash", "object": "model", "created": 1735689600, "owned_by": "ai_studio",
   "display_name": "Gemini 2.5 Flash", "description": "Our best model in terms of price-performance",
   "raw_model_path": "models/gemini-2.5-flash", "default_temperature": 1.0,
   "default_max_output_tokens": 65536, "supported_max_output_tokens": 65536, "default_top_p": 0.95},
  {"id": "gemini-2.5-pro", "object": "model", "created": 1735689600, "owned_by": "ai_studio",
   "display_name": "Gemini 2.5 Pro", "description": "Our most powerful thinking model",
   "raw_model_path": "models/gemini-2.5-pro", "default_temperature": 1.0,
   "default_max_output_tokens": 65536, "supported_max_output_tokens": 65536, "default_top_p": 0.95}]})";
constexpr std::string_view kFallback =
    R"({"object":"list","data":[{"id":"no model list","object":"model","created":1735689600,)"
    R"("owned_by":"camoufox-proxy-fallback"}]})";
// Another OpenAI-style proxy behind --upstream may keep the prefix.
constexpr std::string_view kPrefixedList =
    R"({"object":"list","data":[{"id":"models/gemini-2.0-flash","object":"model","owned_by":"google"}]})";

struct Case {
  const char* name;
  unsigned status;
  std::string_view body;
  bool ok;
  bool known;
  std::vector<std::string> keys;
};

const std::vector<Case> kCases{
    {"the real child's list", 200, kRealList, true, true, {"gemini-2.5-flash", "gemini-2.5-pro"}},
    {"its fallback entry: no list yet", 200, kFallback, true, false, {}},
    {"an empty list: no list either", 200, R"({"object":"list","data":[]})", true, false, {}},
    {"a prefixed id is compared without the prefix", 200, kPrefixedList, true, true, {"gemini-2.0-flash"}},
    {"entries without a string id are skipped",
     200,
     R"({"data":[{"id":5},"x",{"object":"model"},{"id":"m1"}]})",
     true,
     true,
     {"m1"}},
    {"an id listed twice counts once", 200, R"({"data":[{"id":"m1"},{"id":"models/m1"}]})", true, true, {"m1"}},
    {"a failed answer", 503, R"({"detail":"Service unavailable"})", false, false, {}},
    {"the real child's parking timeout", 530, R"({"detail":"System state resolution timeout"})", false, false, {}},
    {"not JSON", 200, "<html>", false, false, {}},
    {"not an object", 200, "[1,2]", false, false, {}},
    {"no data list", 200, R"({"object":"list","data":{}})", false, false, {}},
};

std::vector<std::string> keys_of(const ModelSet& set) {
  std::vector<std::string> keys;
  for (const auto& entry : set.entries) keys.push_back(entry.key);
  return keys;
}

ModelSet known(std::vector<std::string> ids) {
  ModelSet set;
  set.known = true;
  for (auto& id : ids) set.entries.push_back({id, R"({"id":")" + id + R"("})"});
  return set;
}

}  // namespace

TEST(ModelCatalog, JudgesEveryRecordedAnswer) {
  for (const Case& c : kCases) {
    const ModelsVerdict verdict = judge_models(c.status, c.body);
    EXPECT_EQ(verdict.ok, c.ok) << c.name;
    EXPECT_EQ(verdict.models.known, c.known) << c.name;
    EXPECT_EQ(keys_of(verdict.models), c.keys) << c.name;
    EXPECT_EQ(verdict.error.empty(), c.ok) << c.name;
    if (!c.ok) {
      EXPECT_EQ(verdict.error.find('<'), std::string::npos) << "quotes the body: " << verdict.error;
    }
  }
}

TEST(ModelCatalog, EntriesKeepTheChildsFields) {
  const ModelsVerdict verdict = judge_models(200, kRealList);
  ASSERT_EQ(verdict.models.entries.size(), 2u);
  const auto entry = nlohmann::json::parse(verdict.models.entries[1].json);
  EXPECT_EQ(entry["id"], "gemini-2.5-pro");
  EXPECT_EQ(entry["owned_by"], "ai_studio");
  EXPECT_EQ(entry["created"], 1735689600);
  EXPECT_EQ(entry["raw_model_path"], "models/gemini-2.5-pro");
  EXPECT_EQ(entry["default_max_output_tokens"], 65536);
}

TEST(ModelCatalog, ModelKeyIsThePartAfterTheLastSlash) {
  EXPECT_EQ(model_key("gemini-2.5-pro"), "gemini-2.5-pro");
  EXPECT_EQ(model_key("models/gemini-2.5-pro"), "gemini-2.5-pro");
  EXPECT_EQ(model_key("a/b/c"), "c");
  EXPECT_EQ(model_key("models/"), "");
  EXPECT_EQ(model_key(""), "");
}

TEST(ModelCatalog, ASetListsIdsWithOrWithoutThePrefix) {
  const ModelSet set = judge_models(200, kRealList).models;
  EXPECT_TRUE(set.lists("gemini-2.5-pro"));
  EXPECT_TRUE(set.lists("models/gemini-2.5-pro"));
  EXPECT_FALSE(set.lists("gemini-2.5"));
  EXPECT_FALSE(set.lists("Gemini-2.5-Pro"));  // the real child compares exactly
  EXPECT_FALSE(set.lists("models/"));
  EXPECT_TRUE(set.may_serve("gemini-2.5-flash"));
  EXPECT_FALSE(set.may_serve("gpt-4"));
  // Not known yet: any model may go there (the real child then checks nothing).
  const ModelSet unknown;
  EXPECT_FALSE(unknown.lists("gpt-4"));
  EXPECT_TRUE(unknown.may_serve("gpt-4"));
  EXPECT_TRUE(known({"m"}).may_serve(""));
}

TEST(ModelCatalog, UnionListsEachIdOnceInTheOpenAiShape) {
  const ModelSet a = known({"m1", "m2"});
  const ModelSet b = known({"m2", "m3"});
  const ModelSet unknown;
  const auto body = models_union({&unknown, &a, &b});
  ASSERT_TRUE(body.has_value());
  const auto json = nlohmann::json::parse(*body);
  EXPECT_EQ(json["object"], "list");
  std::vector<std::string> ids;
  for (const auto& entry : json["data"]) ids.push_back(entry["id"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"m1", "m2", "m3"}));
  EXPECT_EQ(model_ids({&unknown, &a, &b}), ids);
}

TEST(ModelCatalog, UnionKeepsTheFirstChildsEntry) {
  const ModelSet a = judge_models(200, kRealList).models;
  const ModelSet b = judge_models(200, R"({"data":[{"id":"models/gemini-2.5-pro","owned_by":"other"}]})").models;
  const auto json = nlohmann::json::parse(*models_union({&a, &b}));
  ASSERT_EQ(json["data"].size(), 2u);
  EXPECT_EQ(json["data"][1]["owned_by"], "ai_studio");
  const auto reversed = nlohmann::json::parse(*models_union({&b, &a}));
  EXPECT_EQ(reversed["data"][0]["owned_by"], "other");
  EXPECT_EQ(reversed["data"][0]["id"], "models/gemini-2.5-pro");
}

TEST(ModelCatalog, NoUnionBeforeAnySetIsKnown) {
  const ModelSet unknown;
  EXPECT_FALSE(models_union({}).has_value());
  EXPECT_FALSE(models_union({&unknown, &unknown}).has_value());
  // A known set that lists nothing still answers (an empty list).
  const ModelSet empty = known({});
  EXPECT_EQ(nlohmann::json::parse(*models_union({&empty}))["data"].size(), 0u);
}

TEST(ModelCatalog, NoModelMeansEmptyOrTheProxyModelName) {
  EXPECT_TRUE(names_no_model("", kDefaultProxyModelName));
  EXPECT_TRUE(names_no_model("AI-Studio_Proxy_API", kDefaultProxyModelName));
  EXPECT_FALSE(names_no_model("models/AI-Studio_Proxy_API", kDefaultProxyModelName));  // as the real child
  EXPECT_FALSE(names_no_model("gemini-2.5-pro", kDefaultProxyModelName));
  EXPECT_TRUE(names_no_model("custom", "custom"));
}

TEST(ModelCatalog, NotFoundMessageNamesTheModelAndTheKnownIds) {
  EXPECT_EQ(model_not_found_message("gpt-4", {"m1", "m2"}),
            "The model 'gpt-4' is not listed by any ready child; known models: m1, m2.");
  EXPECT_EQ(model_not_found_message("gpt-4", {}), "The model 'gpt-4' is not listed by any ready child.");
  EXPECT_LT(model_not_found_message(std::string(10000, 'x'), {}).size(), 300u);
}
