#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/profiles.hpp"

using namespace coordinator;
namespace fs = std::filesystem;

namespace {

class ProfilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("coordinator-profiles-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& content) { std::ofstream(dir_ / name) << content; }
  fs::path dir_;
};

}  // namespace

TEST_F(ProfilesTest, SortedByFileNameWithStemAsName) {
  write("zeta.json", R"({"cookies":[]})");
  write("alpha.json", R"({"cookies":[]})");
  write("Mid.json", R"({"cookies":[],"origins":[]})");
  const auto found = discover_profiles(dir_);
  ASSERT_TRUE(found.error.empty()) << found.error;
  ASSERT_EQ(found.profiles.size(), 3u);
  EXPECT_EQ(found.profiles[0].name, "Mid");
  EXPECT_EQ(found.profiles[1].name, "alpha");
  EXPECT_EQ(found.profiles[2].name, "zeta");
  EXPECT_TRUE(found.profiles[1].path.is_absolute());
  EXPECT_EQ(found.profiles[1].path.filename(), "alpha.json");
}

TEST_F(ProfilesTest, InvalidFilesAreSkippedWithoutQuotingThem) {
  write("good.json", R"({"cookies":[{"name":"SID","value":"x"}]})");
  write("broken.json", R"({"cookies":[{"name":"SID","value":"secret-value-123")");
  write("array.json", "[1,2,3]");
  write("notes.txt", "not a profile");
  fs::create_directories(dir_ / "folder.json");
  const auto found = discover_profiles(dir_);
  ASSERT_TRUE(found.error.empty());
  ASSERT_EQ(found.profiles.size(), 1u);
  EXPECT_EQ(found.profiles[0].name, "good");
  ASSERT_EQ(found.skipped.size(), 2u);
  for (const auto& skipped : found.skipped) {
    EXPECT_EQ(skipped.reason.find("secret-value"), std::string::npos) << skipped.reason;
  }
  EXPECT_EQ(found.skipped[0].path.filename(), "array.json");
  EXPECT_NE(found.skipped[0].reason.find("not a JSON object"), std::string::npos);
  EXPECT_EQ(found.skipped[1].path.filename(), "broken.json");
}

TEST_F(ProfilesTest, MissingFolderIsAnError) {
  const auto found = discover_profiles(dir_ / "nope");
  EXPECT_NE(found.error.find("does not exist"), std::string::npos);
  EXPECT_TRUE(found.profiles.empty());
}

TEST_F(ProfilesTest, FileInsteadOfFolderIsAnError) {
  write("plain", "x");
  const auto found = discover_profiles(dir_ / "plain");
  EXPECT_NE(found.error.find("not a folder"), std::string::npos);
}

TEST_F(ProfilesTest, NoUsableProfileIsAnError) {
  write("bad.json", "{");
  const auto found = discover_profiles(dir_);
  EXPECT_NE(found.error.find("no usable profile"), std::string::npos);
  EXPECT_EQ(found.skipped.size(), 1u);
}

namespace {

using Variables = std::vector<std::pair<std::string, std::string>>;

}  // namespace

TEST(EnvFile, KeyValueLines) {
  const EnvFile env = parse_env_file("A=1\nB=two words\nEMPTY=\nURL=http://x/?a=b\n");
  EXPECT_TRUE(env.errors.empty());
  EXPECT_EQ(env.variables, (Variables{{"A", "1"}, {"B", "two words"}, {"EMPTY", ""}, {"URL", "http://x/?a=b"}}));
}

TEST(EnvFile, EmptyTextHasNothing) {
  const EnvFile env = parse_env_file("");
  EXPECT_TRUE(env.variables.empty());
  EXPECT_TRUE(env.errors.empty());
}

TEST(EnvFile, CommentsAndBlankLinesAreSkipped) {
  const EnvFile env = parse_env_file("# a comment\n\n   \n\t\n  # indented comment\nA=1\n#B=2\nC=3 # kept\n");
  EXPECT_TRUE(env.errors.empty());
  EXPECT_EQ(env.variables, (Variables{{"A", "1"}, {"C", "3 # kept"}}));
}

TEST(EnvFile, LastLineWithoutNewline) {
  const EnvFile env = parse_env_file("A=1\nB=2");
  EXPECT_EQ(env.variables, (Variables{{"A", "1"}, {"B", "2"}}));
}

TEST(EnvFile, ExportPrefix) {
  const EnvFile env = parse_env_file("export A=1\n  export B=2\nexported=3\n");
  EXPECT_TRUE(env.errors.empty());
  EXPECT_EQ(env.variables, (Variables{{"A", "1"}, {"B", "2"}, {"exported", "3"}}));
}

TEST(EnvFile, MatchingQuotesAreRemoved) {
  const EnvFile env = parse_env_file(
      "D=\"double quoted\"\nS='single quoted'\nE=\"\"\nM=\"mixed'\nO=\"open\nQ=\"\nIN=a\"b\"\nSP=  \" padded \"  \n");
  EXPECT_TRUE(env.errors.empty());
  EXPECT_EQ(env.variables, (Variables{{"D", "double quoted"},
                                      {"S", "single quoted"},
                                      {"E", ""},
                                      {"M", "\"mixed'"},
                                      {"O", "\"open"},
                                      {"Q", "\""},
                                      {"IN", "a\"b\""},
                                      {"SP", " padded "}}));
}

TEST(EnvFile, CrlfLineEndings) {
  const EnvFile env = parse_env_file("# c\r\nA=1\r\n\r\nB=\"two\"\r\nbad line\r\n");
  EXPECT_EQ(env.variables, (Variables{{"A", "1"}, {"B", "two"}}));
  EXPECT_EQ(env.errors, (std::vector<std::string>{"line 5: expected KEY=VALUE"}));
}

TEST(EnvFile, SpacesAroundTheEqualsSign) {
  const EnvFile env = parse_env_file("KEY = value\nTAB\t=\tx\n  LEAD=y  \n");
  EXPECT_TRUE(env.errors.empty());
  EXPECT_EQ(env.variables, (Variables{{"KEY", "value"}, {"TAB", "x"}, {"LEAD", "y"}}));
}

TEST(EnvFile, BadLinesAreReportedByNumberWithoutTheirContent) {
  const EnvFile env = parse_env_file("A=1\nsecret123\n# comment\n=secret123\n\nexport secret123\nB=2\n");
  EXPECT_EQ(env.variables, (Variables{{"A", "1"}, {"B", "2"}}));
  EXPECT_EQ(env.errors, (std::vector<std::string>{"line 2: expected KEY=VALUE", "line 4: expected KEY=VALUE",
                                                  "line 6: expected KEY=VALUE"}));
  for (const auto& error : env.errors) EXPECT_EQ(error.find("secret123"), std::string::npos) << error;
}

TEST(EnvFile, InvalidNamesAreReportedWithoutTheirContent) {
  const EnvFile env = parse_env_file(
      "1A=secret123\nBAD-NAME=secret123\nBAD NAME=secret123\na.b=secret123\nsecret123$=x\n_OK=1\nlower_Case9=2\n");
  EXPECT_EQ(env.variables, (Variables{{"_OK", "1"}, {"lower_Case9", "2"}}));
  ASSERT_EQ(env.errors.size(), 5u);
  for (std::size_t i = 0; i < env.errors.size(); ++i) {
    EXPECT_EQ(env.errors[i], "line " + std::to_string(i + 1) + ": invalid variable name");
    EXPECT_EQ(env.errors[i].find("secret123"), std::string::npos) << env.errors[i];
  }
}

TEST(EnvFile, ForProfileIsTheSiblingEnvFile) {
  EXPECT_EQ(env_file_for("/srv/profiles/alice.json"), fs::path("/srv/profiles/alice.env"));
  EXPECT_EQ(env_file_for("profiles/bob.json"), fs::path("profiles/bob.env"));
  EXPECT_EQ(env_file_for("/p/carol.v2.json"), fs::path("/p/carol.v2.env"));
  EXPECT_EQ(env_file_for("/p/dave"), fs::path("/p/dave.env"));
}
