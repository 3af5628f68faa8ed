#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

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
