#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "coordinator/working_profile.hpp"

using namespace coordinator;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_in_place(const fs::path& path, const std::string& content) {
  // As the real child does: open "w" (same inode), write.
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// Renames a new file over `path`, as an operator replacing a profile would.
void replace(const fs::path& path, const std::string& content) {
  const fs::path temp = path.string() + ".new";
  write_in_place(temp, content);
  fs::rename(temp, path);
}

mode_t mode_of(const fs::path& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_mode & 07777;
}

class WorkingProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/working-profile-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    source_ = dir_ / "alpha.json";
    write_in_place(source_, R"({"cookies":[{"name":"SID","value":"old"}],"origins":[]})");
    ::chmod(source_.c_str(), 0640);
    ASSERT_EQ(copy_.create(source_, dir_ / "runtime" / "0-1"), "");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  fs::path source_;
  WorkingProfile copy_;
};

}  // namespace

TEST(CopyBackRule, OnlyAWholeNewObjectWhileTheOperatorsFileIsUnchanged) {
  EXPECT_EQ(decide_copy_back("h1", true, "h1", "h1"), CopyBack::unchanged);
  EXPECT_EQ(decide_copy_back("h1", false, "h1", "h1"), CopyBack::unchanged) << "nothing new, whatever it parses as";
  EXPECT_EQ(decide_copy_back("h2", true, "h1", "h1"), CopyBack::written);
  EXPECT_EQ(decide_copy_back("h2", false, "h1", "h1"), CopyBack::half_written);
  EXPECT_EQ(decide_copy_back("h2", true, "h1", "h9"), CopyBack::operator_changed);
  EXPECT_EQ(decide_copy_back("h2", true, "h1", ""), CopyBack::operator_changed) << "a removed file is not recreated";
  EXPECT_EQ(decide_copy_back("h9", true, "h1", "h9"), CopyBack::operator_changed)
      << "even when the child's copy matches the operator's new file, that file is the operator's";
}

TEST(ContentHash, TellsVersionsApart) {
  EXPECT_EQ(content_hash("abc"), content_hash("abc"));
  EXPECT_NE(content_hash("abc"), content_hash("abd"));
  EXPECT_NE(content_hash(""), content_hash(std::string(1, '\0')));
  EXPECT_EQ(to_string(CopyBack::operator_changed), "operator_changed");
}

TEST_F(WorkingProfileTest, APrivateCopyWithTheSameName) {
  EXPECT_EQ(copy_.path(), dir_ / "runtime" / "0-1" / "alpha.json");
  EXPECT_EQ(copy_.path().stem(), "alpha") << "the child names itself after its file's stem";
  EXPECT_EQ(read(copy_.path()), read(source_));
  EXPECT_EQ(mode_of(copy_.path()), 0600u);
  EXPECT_EQ(mode_of(copy_.folder()), 0700u);
  EXPECT_EQ(copy_.sync(), CopyBack::unchanged);
  EXPECT_FALSE(copy_.changed_by_operator());
}

TEST_F(WorkingProfileTest, TheChildsRefreshGoesBackAtomicallyWithTheSameMode) {
  const auto before = file_stamp(source_);
  const std::string refreshed = R"({"cookies":[{"name":"SID","value":"new"}],"origins":[]})";
  write_in_place(copy_.path(), refreshed);
  EXPECT_EQ(copy_.sync(), CopyBack::written);
  EXPECT_EQ(read(source_), refreshed);
  EXPECT_EQ(mode_of(source_), 0640u);
  EXPECT_NE(file_stamp(source_)->inode, before->inode) << "renamed over, not written in place";
  EXPECT_FALSE(copy_.changed_by_operator()) << "the coordinator's own write is not a change";
  EXPECT_EQ(copy_.sync(), CopyBack::unchanged);
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".coordinator-"), std::string::npos) << "no temporary left";
  }
}

TEST_F(WorkingProfileTest, AHalfWrittenCopyIsReadAgainLater) {
  const std::string original = read(source_);
  write_in_place(copy_.path(), R"({"cookies":[{"name":"SID","val)");
  EXPECT_EQ(copy_.sync(), CopyBack::half_written);
  EXPECT_EQ(read(source_), original);
  write_in_place(copy_.path(), "");
  EXPECT_EQ(copy_.sync(), CopyBack::half_written);
  write_in_place(copy_.path(), "[1,2]");
  EXPECT_EQ(copy_.sync(), CopyBack::half_written) << "not an object";
  write_in_place(copy_.path(), R"({"cookies":[]})");
  EXPECT_EQ(copy_.sync(), CopyBack::written);
  EXPECT_EQ(read(source_), R"({"cookies":[]})");
}

TEST_F(WorkingProfileTest, AnOperatorsNewFileIsNeverOverwritten) {
  const std::string operators = R"({"cookies":[{"name":"SID","value":"from-the-operator"}]})";
  replace(source_, operators);
  EXPECT_TRUE(copy_.changed_by_operator());
  // The old child saves (periodically, then at its clean stop): none of it reaches the new file.
  write_in_place(copy_.path(), R"({"cookies":[{"name":"SID","value":"old-refreshed"}]})");
  EXPECT_EQ(copy_.sync(), CopyBack::operator_changed);
  EXPECT_EQ(copy_.sync(/*force=*/true), CopyBack::operator_changed);
  EXPECT_EQ(read(source_), operators);
  EXPECT_TRUE(copy_.changed_by_operator());
}

TEST_F(WorkingProfileTest, AnOperatorsEditInPlaceCountsToo) {
  write_in_place(source_, R"({"cookies":[],"edited":true})");
  EXPECT_TRUE(copy_.changed_by_operator());
  fs::remove(source_);
  EXPECT_TRUE(copy_.changed_by_operator());
  write_in_place(copy_.path(), R"({"cookies":[{"name":"SID","value":"x"}]})");
  EXPECT_EQ(copy_.sync(), CopyBack::operator_changed);
  EXPECT_FALSE(fs::exists(source_)) << "a removed profile is not brought back";
}

TEST_F(WorkingProfileTest, ASymlinkedProfileIsWrittenThroughTheLink) {
  WorkingProfile linked;
  const fs::path link = dir_ / "beta.json";
  fs::create_symlink(source_, link);
  ASSERT_EQ(linked.create(link, dir_ / "runtime" / "1-1"), "");
  write_in_place(linked.path(), R"({"cookies":[1]})");
  EXPECT_EQ(linked.sync(), CopyBack::written);
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read(source_), R"({"cookies":[1]})");
}

TEST_F(WorkingProfileTest, RemoveDeletesTheCopyAndItsFolder) {
  const fs::path folder = copy_.folder();
  copy_.remove();
  EXPECT_FALSE(fs::exists(folder));
  EXPECT_TRUE(fs::exists(source_));
  EXPECT_FALSE(copy_.changed_by_operator()) << "what was synced is still known after the copy is gone";
}

TEST(ReplaceFileAtomically, GivesUpWhenTheTargetChangedMeanwhile) {
  char pattern[] = "/tmp/replace-atomically-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const fs::path dir = pattern;
  const fs::path target = dir / "p.json";
  write_in_place(target, "{}");
  const auto stamp = file_stamp(target);
  replace(target, R"({"operator":1})");
  EXPECT_NE(replace_file_atomically(target, R"({"child":1})", stamp), "");
  EXPECT_EQ(read(target), R"({"operator":1})");
  EXPECT_EQ(replace_file_atomically(target, R"({"child":2})", file_stamp(target)), "");
  EXPECT_EQ(read(target), R"({"child":2})");
  fs::remove_all(dir);
}
