#include "coordinator/state_writer.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "coordinator/state_file.hpp"

using namespace coordinator;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

class StateWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("coordinator-writer-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    path_ = dir_ / "state.json";
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path dir_;
  fs::path path_;
};

json snapshot(int n) {
  return {{"version", 1}, {"profiles", json::object()}, {"usage", {{"n", n}}}};
}

// The `n` of the snapshot on disk, or -1.
int saved_n(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  const json document = json::parse(text.str(), nullptr, false);
  if (!document.is_object() || !document.contains("usage")) return -1;
  return document["usage"].value("n", -1);
}

// Counts the writer's results from its own thread.
struct WriteLog {
  std::mutex mutex;
  std::vector<std::error_code> results;
  StateWriter::WriteObserver observer() {
    return [this](std::error_code error) {
      std::lock_guard lock(mutex);
      results.push_back(error);
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return results.size();
  }
};

// Sends spdlog's default logger into a string for the test's duration.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines_);
    sink->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() {
    spdlog::default_logger()->flush();
    return lines_.str();
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream lines_;
};

// Waits (bounded) until `done` holds.
template <class Condition>
bool eventually(Condition done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_F(StateWriterTest, TheFirstSnapshotIsWrittenAtOnce) {
  WriteLog log;
  StateWriter writer(path_, 10s, log.observer());
  writer.submit(snapshot(1));
  ASSERT_TRUE(eventually([&] { return log.size() == 1; }));
  EXPECT_EQ(saved_n(path_), 1);
}

TEST_F(StateWriterTest, SubmitsWithinTheIntervalBecomeOneWriteOfTheLatest) {
  WriteLog log;
  constexpr auto kInterval = 100ms;
  StateWriter writer(path_, kInterval, log.observer());
  const auto started = Clock::now();
  // Spaced out, so that a writer without the interval would have written each one.
  constexpr int kSubmits = 40;
  for (int n = 1; n <= kSubmits; ++n) {
    writer.submit(snapshot(n));
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(eventually([&] { return saved_n(path_) == kSubmits; }));
  const auto elapsed = Clock::now() - started;
  // One write at once, then at most one per interval (and one more for timing slack).
  EXPECT_LE(log.size(), static_cast<std::size_t>(elapsed / kInterval) + 2);
  EXPECT_LE(log.size(), static_cast<std::size_t>(kSubmits / 4));
  writer.flush_and_stop();
  EXPECT_EQ(writer.failures(), 0u);
}

TEST_F(StateWriterTest, StopWritesThePendingSnapshotWithoutWaitingOutTheInterval) {
  WriteLog log;
  StateWriter writer(path_, 10min, log.observer());
  writer.submit(snapshot(1));
  ASSERT_TRUE(eventually([&] { return log.size() == 1; }));
  writer.submit(snapshot(2));  // waits for the interval
  writer.submit(snapshot(3));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(saved_n(path_), 1);
  const auto started = Clock::now();
  writer.flush_and_stop();
  EXPECT_LT(Clock::now() - started, 5s);
  EXPECT_EQ(saved_n(path_), 3);
  EXPECT_EQ(log.size(), 2u);
  writer.flush_and_stop();     // again: nothing happens
  writer.submit(snapshot(4));  // after the stop: ignored
  EXPECT_EQ(saved_n(path_), 3);
  EXPECT_EQ(writer.writes(), 2u);
}

TEST_F(StateWriterTest, TheDestructorFlushes) {
  {
    StateWriter writer(path_, 10min);
    writer.submit(snapshot(1));
    ASSERT_TRUE(eventually([&] { return writer.writes() == 1; }));
    writer.submit(snapshot(2));
  }
  EXPECT_EQ(saved_n(path_), 2);
}

TEST_F(StateWriterTest, StoppingWithNothingSubmittedWritesNothing) {
  StateWriter writer(path_, 20ms);
  writer.flush_and_stop();
  EXPECT_EQ(writer.writes(), 0u);
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(StateWriterTest, ReadersAlwaysFindACompleteFile) {
  StateWriter writer(path_, 1ms);
  writer.submit(snapshot(0));
  ASSERT_TRUE(eventually([&] { return fs::exists(path_); }));
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad_reads{0};
  std::thread reader([&] {
    const auto now = std::chrono::system_clock::now();
    while (!done) {
      const LoadResult loaded = load_state(path_, now);
      ++reads;
      if (loaded.outcome != LoadResult::Outcome::loaded) ++bad_reads;
    }
  });
  // Until enough writes and reads overlapped (a loaded machine fsyncs slowly), bounded.
  const auto deadline = Clock::now() + 20s;
  for (int n = 1; (writer.writes() <= 10 || reads.load() <= 10) && Clock::now() < deadline; ++n) {
    json big = snapshot(n);
    big["usage"]["filler"] = std::string(static_cast<std::size_t>(n % 64) * 1024, 'x');
    writer.submit(std::move(big));
    std::this_thread::sleep_for(200us);
  }
  writer.flush_and_stop();
  done = true;
  reader.join();
  EXPECT_GT(writer.writes(), 10u);
  EXPECT_GT(reads.load(), 10);
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_EQ(writer.failures(), 0u);
}

TEST_F(StateWriterTest, AnUnwritableFolderIsLoggedOnceAndNothingCrashes) {
  CapturedLog captured;
  std::ofstream(dir_ / "plain-file") << "x";
  const fs::path impossible = dir_ / "plain-file" / "state.json";  // ENOTDIR, also for root
  WriteLog log;
  {
    StateWriter writer(impossible, 1ms, log.observer());
    for (int n = 1; n <= 5; ++n) {
      json secret = snapshot(n);
      secret["usage"]["cookie"] = "SECRET-COOKIE";
      writer.submit(std::move(secret));
      ASSERT_TRUE(eventually([&] { return log.size() == static_cast<std::size_t>(n); }));
    }
    EXPECT_EQ(writer.failures(), 5u);
  }
  for (const auto& error : log.results) EXPECT_EQ(error, std::errc::not_a_directory);
  const std::string text = captured.text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_EQ(text.rfind("warning state file ", 0), 0u) << text;
  EXPECT_NE(text.find("cannot save it: Not a directory"), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRET"), std::string::npos);
}

TEST_F(StateWriterTest, ARecoveryIsLoggedOnceAndANewErrorAgain) {
  CapturedLog captured;
  const fs::path folder = dir_ / "sub";
  WriteLog log;
  StateWriter writer(folder / "state.json", 1ms, log.observer());
  writer.submit(snapshot(1));  // the folder does not exist yet
  ASSERT_TRUE(eventually([&] { return log.size() == 1; }));
  writer.submit(snapshot(2));
  ASSERT_TRUE(eventually([&] { return log.size() == 2; }));
  fs::create_directory(folder);
  writer.submit(snapshot(3));
  ASSERT_TRUE(eventually([&] { return log.size() == 3; }));
  writer.submit(snapshot(4));
  ASSERT_TRUE(eventually([&] { return log.size() == 4; }));
  writer.flush_and_stop();
  EXPECT_EQ(saved_n(folder / "state.json"), 4);
  const std::string text = captured.text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_NE(text.find("No such file or directory"), std::string::npos) << text;
  EXPECT_NE(text.find("info state file "), std::string::npos) << text;
  EXPECT_NE(text.find("saved again"), std::string::npos) << text;
}
