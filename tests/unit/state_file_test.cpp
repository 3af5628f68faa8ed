#include "coordinator/state_file.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "coordinator/usage.hpp"

using namespace coordinator;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const auto kNow = std::chrono::sys_days{std::chrono::year{2024} / 5 / 1} + 12h;

class StateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("coordinator-state-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    path_ = dir_ / "state.json";
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  void write(const fs::path& path, const std::string& content) { std::ofstream(path, std::ios::binary) << content; }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
  fs::path path_;
};

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

FleetState sample_state() {
  FleetState state;
  ProfileState alice;
  alice.cooldowns.push_back({"gemini-2.5-pro", kNow + 1h, "quota"});
  alice.cooldowns.push_back({"gemini-2.5-flash", kNow + 90s + 123ms, ""});
  state.profiles["alice"] = alice;
  ProfileState bob;
  bob.needs_relogin = true;
  bob.relogin_file_stamp = ProfileFileStamp{1714567890123456789, 5120};
  state.profiles["bob"] = bob;
  ProfileState carol;
  carol.parked = true;
  state.profiles["carol"] = carol;
  UsageBook book;
  book.record_request("alice", key_id("k"), 200, kNow);
  state.usage = book.to_state();
  return state;
}

}  // namespace

TEST_F(StateFileTest, RoundTripsThroughText) {
  const FleetState state = sample_state();
  const json document = to_json(state);
  EXPECT_EQ(document["version"], 1);
  EXPECT_EQ(document["profiles"]["alice"]["cooldowns"][0]["until"], "2024-05-01T13:00:00.000Z");
  EXPECT_EQ(document["profiles"]["bob"]["relogin_file_stamp"]["mtime_ns"], 1714567890123456789);
  const ParsedState parsed = parse_state(document.dump(), kNow);
  ASSERT_TRUE(parsed.state) << parsed.refusal;
  EXPECT_TRUE(parsed.skipped.empty());
  EXPECT_EQ(parsed.state->profiles, state.profiles);
  EXPECT_EQ(parsed.state->usage, state.usage);
}

TEST_F(StateFileTest, EndedCooldownsAreDroppedAtLoad) {
  FleetState state = sample_state();
  state.profiles["alice"].cooldowns.push_back({"old-model", kNow, "ended right now"});
  state.profiles["alice"].cooldowns.push_back({"older-model", kNow - 24h, "quota"});
  const ParsedState parsed = parse_state(to_json(state).dump(), kNow);
  ASSERT_TRUE(parsed.state);
  ASSERT_EQ(parsed.state->profiles.at("alice").cooldowns.size(), 2u);
  EXPECT_EQ(parsed.state->profiles.at("alice").cooldowns, sample_state().profiles.at("alice").cooldowns);
  // Later, the second one has ended too.
  const ParsedState later = parse_state(to_json(state).dump(), kNow + 2min);
  ASSERT_EQ(later.state->profiles.at("alice").cooldowns.size(), 1u);
  EXPECT_EQ(later.state->profiles.at("alice").cooldowns[0].model, "gemini-2.5-pro");
}

TEST_F(StateFileTest, MalformedPartsAreSkippedAndNamed) {
  const ParsedState parsed = parse_state(R"({"version": 1, "future_field": [1, 2],
    "profiles": {
      "ok": {"cooldowns": [{"model": "m", "until": "2024-05-01T13:00:00Z"},
                           {"model": "m2", "until": "tomorrow"}, {"until": "2024-05-01T13:00:00Z"}, 7],
             "needs_relogin": "yes", "parked": true, "relogin_file_stamp": {"mtime_ns": "1", "size": 2}},
      "bad\u0001name": 42,
      "also": {"cooldowns": {}}
    },
    "usage": [1]})",
                                         kNow);
  ASSERT_TRUE(parsed.state) << parsed.refusal;
  ASSERT_EQ(parsed.state->profiles.size(), 2u);
  const ProfileState& ok = parsed.state->profiles.at("ok");
  ASSERT_EQ(ok.cooldowns.size(), 1u);
  EXPECT_EQ(ok.cooldowns[0].model, "m");
  EXPECT_EQ(ok.cooldowns[0].reason, "");
  EXPECT_FALSE(ok.needs_relogin);
  EXPECT_TRUE(ok.parked);
  EXPECT_FALSE(ok.relogin_file_stamp);
  EXPECT_TRUE(parsed.state->profiles.at("also").cooldowns.empty());
  EXPECT_TRUE(parsed.state->usage.is_null());
  const std::vector<std::string> expected{"profile ok: cooldown 1 has no model or no readable time",
                                          "profile ok: cooldown 2 has no model or no readable time",
                                          "profile ok: cooldown 3 has no model or no readable time",
                                          "profile ok: needs_relogin is not true or false",
                                          "profile ok: relogin_file_stamp is not {mtime_ns, size}",
                                          "profile bad?name: not an object",
                                          "profile also: cooldowns is not a list",
                                          "usage is not an object"};
  // Profiles come in the file's JSON object order (nlohmann sorts names).
  std::vector<std::string> skipped = parsed.skipped, sorted_expected = expected;
  std::sort(skipped.begin(), skipped.end());
  std::sort(sorted_expected.begin(), sorted_expected.end());
  EXPECT_EQ(skipped, sorted_expected);
}

TEST_F(StateFileTest, RefusesWhatIsNoStateFileOfThisVersion) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "not valid JSON"},
      {"{\"version\": 1", "not valid JSON"},
      {"[1]", "not a JSON object"},
      {"{}", "no version field"},
      {R"({"version": "1"})", "version is not an integer"},
      {R"({"version": 1.0})", "version is not an integer"},
      {R"({"version": 2, "profiles": {}})", "version 2, this program reads version 1"},
      {R"({"version": -1})", "version -1, this program reads version 1"},
  };
  for (const auto& [text, reason] : cases) {
    const ParsedState parsed = parse_state(text, kNow);
    EXPECT_FALSE(parsed.state) << text;
    EXPECT_EQ(parsed.refusal.rfind(reason, 0), 0u) << text << " -> " << parsed.refusal;
  }
  const std::string deep = "{\"version\":1,\"usage\":" + std::string(1000, '[') + std::string(1000, ']') + "}";
  EXPECT_FALSE(parse_state(deep, kNow).state);
  const std::string secret = R"({"version": 1, "profiles": {"a": {"cookie": "SECRET)";
  EXPECT_EQ(parse_state(secret, kNow).refusal.find("SECRET"), std::string::npos);
}

TEST_F(StateFileTest, SavedFileLoads) {
  ASSERT_FALSE(save_state_atomically(path_, to_json(sample_state())));
  const LoadResult loaded = load_state(path_, kNow);
  ASSERT_EQ(loaded.outcome, LoadResult::Outcome::loaded) << loaded.reason;
  EXPECT_EQ(loaded.state.profiles, sample_state().profiles);
  EXPECT_EQ(files(), std::vector<std::string>{"state.json"});  // no temporary left behind
}

TEST_F(StateFileTest, AMissingFileIsAFreshStartAndCreatesNothing) {
  const LoadResult loaded = load_state(path_, kNow);
  EXPECT_EQ(loaded.outcome, LoadResult::Outcome::missing);
  EXPECT_TRUE(loaded.state.profiles.empty());
  EXPECT_TRUE(loaded.reason.empty());
  EXPECT_TRUE(files().empty());
}

TEST_F(StateFileTest, ACorruptFileIsSetAsideNeverDeleted) {
  write(path_, "{\"version\": 1, \"profiles\": {\"a\"");
  LoadResult loaded = load_state(path_, kNow);
  EXPECT_EQ(loaded.outcome, LoadResult::Outcome::set_aside);
  EXPECT_EQ(loaded.set_aside_path, dir_ / "state.json.corrupt-20240501T120000Z");
  EXPECT_EQ(loaded.reason.rfind("not valid JSON", 0), 0u) << loaded.reason;
  EXPECT_NE(loaded.reason.find("moved to state.json.corrupt-20240501T120000Z"), std::string::npos);
  EXPECT_EQ(loaded.reason.find('\n'), std::string::npos);
  EXPECT_EQ(read(loaded.set_aside_path), "{\"version\": 1, \"profiles\": {\"a\"");
  EXPECT_FALSE(fs::exists(path_));

  // A second one within the same second does not replace the first.
  write(path_, R"({"version": 7})");
  loaded = load_state(path_, kNow);
  EXPECT_EQ(loaded.set_aside_path, dir_ / "state.json.corrupt-20240501T120000Z-2");
  EXPECT_EQ(read(loaded.set_aside_path), R"({"version": 7})");
  EXPECT_EQ(files(),
            (std::vector<std::string>{"state.json.corrupt-20240501T120000Z", "state.json.corrupt-20240501T120000Z-2"}));
}

TEST_F(StateFileTest, AFolderOrAFifoInThePlaceOfTheFileIsSetAside) {
  fs::create_directory(path_);
  LoadResult loaded = load_state(path_, kNow);
  EXPECT_EQ(loaded.outcome, LoadResult::Outcome::set_aside);
  EXPECT_EQ(loaded.reason.rfind("not a regular file", 0), 0u) << loaded.reason;
  EXPECT_TRUE(fs::is_directory(loaded.set_aside_path));

  ASSERT_EQ(::mkfifo(path_.c_str(), 0600), 0);
  loaded = load_state(path_, kNow + 1s);  // must not wait for a writer
  EXPECT_EQ(loaded.outcome, LoadResult::Outcome::set_aside);
  EXPECT_TRUE(fs::is_fifo(loaded.set_aside_path));
}

TEST_F(StateFileTest, ALinkThatCannotBeFollowedIsSetAside) {
  fs::create_symlink(path_.filename(), path_);  // a loop: open() fails with ELOOP, also for root
  const LoadResult loaded = load_state(path_, kNow);
  EXPECT_EQ(loaded.outcome, LoadResult::Outcome::set_aside);
  EXPECT_EQ(loaded.reason.rfind("cannot be read: ", 0), 0u) << loaded.reason;
  EXPECT_TRUE(fs::is_symlink(loaded.set_aside_path));
  EXPECT_FALSE(fs::exists(fs::symlink_status(path_)));
}

TEST_F(StateFileTest, AnUnreadableFileIsSetAside) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads a file of mode 0000";
  write(path_, to_json(sample_state()).dump());
  fs::permissions(path_, fs::perms::none);
  const LoadResult loaded = load_state(path_, kNow);
  EXPECT_EQ(loaded.outcome, LoadResult::Outcome::set_aside);
  EXPECT_EQ(loaded.reason.rfind("cannot be read: ", 0), 0u) << loaded.reason;
}

TEST_F(StateFileTest, SavedFileIsPrivateWhateverTheUmaskOrALeftoverTemporary) {
  const mode_t old_umask = ::umask(0);
  const fs::path leftover = path_.string() + ".tmp-" + std::to_string(::getpid());
  write(leftover, "half a file from an earlier process with this pid");
  ::chmod(leftover.c_str(), 0666);
  const std::error_code error = save_state_atomically(path_, to_json(sample_state()));
  ::umask(old_umask);
  ASSERT_FALSE(error) << error.message();
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_TRUE(json::parse(read(path_)).is_object());
}

TEST_F(StateFileTest, SaveReplacesTheOldFile) {
  ASSERT_FALSE(save_state_atomically(path_, to_json(FleetState{})));
  ASSERT_FALSE(save_state_atomically(path_, to_json(sample_state())));
  const LoadResult loaded = load_state(path_, kNow);
  EXPECT_EQ(loaded.state.profiles.size(), 3u);
}

TEST_F(StateFileTest, NamesThatAreNotUtf8AreSavedReplaced) {
  FleetState state;
  state.profiles["caf\xe9"] = ProfileState{};
  ASSERT_FALSE(save_state_atomically(path_, to_json(state)));
  const LoadResult loaded = load_state(path_, kNow);
  ASSERT_EQ(loaded.outcome, LoadResult::Outcome::loaded) << loaded.reason;
  EXPECT_EQ(loaded.state.profiles.count("caf\xef\xbf\xbd"), 1u);  // U+FFFD
}

TEST_F(StateFileTest, SaveFailuresAreErrorsAndLeaveNoTemporary) {
  std::error_code error = save_state_atomically(dir_ / "no-such-folder" / "state.json", json::object());
  EXPECT_EQ(error, std::errc::no_such_file_or_directory);

  fs::create_directory(path_);  // rename cannot replace a folder
  error = save_state_atomically(path_, json::object());
  EXPECT_TRUE(error);
  EXPECT_EQ(files(), std::vector<std::string>{"state.json"});

  write(dir_ / "plain-file", "x");
  error = save_state_atomically(dir_ / "plain-file" / "state.json", json::object());
  EXPECT_EQ(error, std::errc::not_a_directory);
}

// A writer killed with SIGKILL at random moments: after each kill the file at
// PATH is a complete state file, the old one or a new one.
TEST_F(StateFileTest, AKillAtAnyMomentLeavesACompleteFile) {
  const auto document = [](int round) {
    FleetState state;
    const std::size_t length = static_cast<std::size_t>(round) * 40961 % 400000;
    state.usage = {{"length", length}, {"filler", std::string(length, 'x')}};
    return to_json(state);
  };
  ASSERT_FALSE(save_state_atomically(path_, document(0)));
  std::mt19937 random(20240501);
  int killed_mid_write = 0;
  for (int round = 0; round < 30; ++round) {
    // The test process has no other thread here, so the forked copy may allocate.
    const pid_t writer = ::fork();
    ASSERT_GE(writer, 0);
    if (writer == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (int i = 1; i <= 100000; ++i) (void)save_state_atomically(path_, document(i));
      ::_exit(0);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 15000));
    ASSERT_EQ(::kill(writer, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(writer, &status, 0), writer);
    EXPECT_TRUE(WIFSIGNALED(status));
    const fs::path temporary = path_.string() + ".tmp-" + std::to_string(writer);
    if (fs::exists(temporary)) {
      ++killed_mid_write;
      fs::remove(temporary);
    }
    const LoadResult loaded = load_state(path_, kNow);
    ASSERT_EQ(loaded.outcome, LoadResult::Outcome::loaded) << "round " << round << ": " << loaded.reason;
    const json& usage = loaded.state.usage;
    ASSERT_TRUE(usage.is_object()) << "round " << round;
    EXPECT_EQ(usage["filler"].get<std::string>().size(), usage["length"].get<std::size_t>());
  }
  EXPECT_GT(killed_mid_write, 0);  // the kills did land inside writes
}
