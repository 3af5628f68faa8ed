#include "coordinator/profile_admin.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <string>

#include "coordinator/routes.hpp"
#include "coordinator/working_profile.hpp"

using namespace coordinator;

TEST(ProfileAdmin, NamesThatMayNameAFile) {
  for (const char* name : {"alice", "A", "bob.work", "x_1-2", "a..b", "z.", "0"}) {
    EXPECT_EQ(profile_name_problem(name), "") << name;
  }
  EXPECT_EQ(profile_name_problem(std::string(64, 'a')), "");
}

TEST(ProfileAdmin, NamesThatAreRefused) {
  EXPECT_EQ(profile_name_problem(""), "the profile name is empty");
  EXPECT_EQ(profile_name_problem(std::string(65, 'a')), "the profile name is longer than 64 characters");
  for (const char* name : {".", "..", ".hidden"}) {
    EXPECT_EQ(profile_name_problem(name), "the profile name must not start with '.'") << name;
  }
  const std::string bad_char = "the profile name may hold only letters, digits, '.', '_' and '-'";
  for (const char* name : {"../x", "a/b", "a b", "a%2Fb", "caf\xc3\xa9", "a\\b", "a:b", "a\nb"}) {
    EXPECT_EQ(profile_name_problem(name), bad_char) << name;
  }
  EXPECT_EQ(profile_name_problem(std::string("a\0b", 3)), bad_char);
}

TEST(ProfileAdmin, AStorageStateIsAnObjectWithACookiesArrayOfObjects) {
  EXPECT_EQ(storage_state_problem(R"({"cookies":[]})"), "");
  EXPECT_EQ(storage_state_problem(R"({"cookies":[{"name":"SID","value":"v"}],"origins":[]})"), "");
  EXPECT_EQ(storage_state_problem(R"({"cookies":[{}],"_fake":{"x":1}})"), "");
}

TEST(ProfileAdmin, SaysWhichCheckABodyFailsAndNeverQuotesIt) {
  EXPECT_EQ(storage_state_problem(""), "the body is not JSON");
  EXPECT_EQ(storage_state_problem("{\"cookies\":[{\"value\":\"secret-xyz\""), "the body is not JSON");
  EXPECT_EQ(storage_state_problem("[]"), "the body is not a JSON object");
  EXPECT_EQ(storage_state_problem("\"secret-xyz\""), "the body is not a JSON object");
  EXPECT_EQ(storage_state_problem("{}"), "the body has no \"cookies\" array");
  EXPECT_EQ(storage_state_problem(R"({"cookies":{"value":"secret-xyz"}})"), "the body has no \"cookies\" array");
  EXPECT_EQ(storage_state_problem(R"({"cookies":["secret-xyz"]})"), "an item of \"cookies\" is not an object");
  EXPECT_EQ(storage_state_problem(R"({"cookies":[],"origins":{}})"), "\"origins\" is not an array");
}

TEST(ProfileAdmin, MovedAsidePathIsInRemovedWithAUtcStamp) {
  using namespace std::chrono;
  const auto at = sys_days{year{2026} / 12 / 1} + 23h + 4min + 5s + 678ms;
  EXPECT_EQ(moved_aside_path("/srv/profiles", "alice", at), "/srv/profiles/removed/alice.json.20261201T230405Z");
  // Not *.json: a later scan of removed/ (or of the folder) never takes it for a profile.
  EXPECT_NE(moved_aside_path("p", "bob", at).extension(), ".json");
}

TEST(ProfileAdmin, NameInPath) {
  EXPECT_EQ(profile_name_in_path("/admin/profiles/alice"), "alice");
  EXPECT_EQ(profile_name_in_path("/admin/profiles/../x"), "../x");
  EXPECT_EQ(profile_name_in_path("/admin/profiles/"), "");
  EXPECT_EQ(profile_name_in_path("/admin/children/a"), "");
}

TEST(ProfileAdmin, RoutesTakePutAndDelete) {
  const Route& route = match_admin_route("/admin/profiles/alice");
  EXPECT_EQ(route.id, RouteId::admin_profile);
  EXPECT_TRUE(method_allowed(route.methods, http::verb::put));
  EXPECT_TRUE(method_allowed(route.methods, http::verb::delete_));
  EXPECT_FALSE(method_allowed(route.methods, http::verb::get));
  EXPECT_FALSE(method_allowed(route.methods, http::verb::post));
  EXPECT_EQ(allow_header(route.methods), "PUT, DELETE");
  // The list itself stays GET only.
  EXPECT_EQ(match_admin_route("/admin/profiles").id, RouteId::admin_profiles);
  EXPECT_EQ(match_admin_route("/admin/profiles").methods, Methods::get);
}

TEST(ProfileAdmin, AnUploadReplacesTheFileWithMode0600WhateverTheOldModeWas) {
  namespace fs = std::filesystem;
  char pattern[] = "/tmp/profile-admin-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const fs::path dir = pattern;
  const fs::path target = dir / "alice.json";
  std::ofstream(target) << R"({"cookies":[]})";
  ::chmod(target.c_str(), 0644);
  ASSERT_EQ(replace_file_atomically(target, R"({"cookies":[{}]})", std::nullopt, 0600), "");
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::ifstream in(target);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), R"({"cookies":[{}]})");
  // A new file too, and no temporary file is left next to it.
  ASSERT_EQ(replace_file_atomically(dir / "bob.json", "{}", std::nullopt, 0600), "");
  ASSERT_EQ(::stat((dir / "bob.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 2u);
  fs::remove_all(dir);
}
