#include "coordinator/child_process.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

using namespace coordinator;

TEST(LoggedOutLine, TheRealChildsWords) {
  // browser_utils/initialization/core.py, as logged by the launcher (a logger prefix, a traceback line).
  EXPECT_TRUE(child_reports_logged_out("Auth failed in headless mode, auth file update required."));
  EXPECT_TRUE(child_reports_logged_out(
      "2025-01-01 10:00:00 ERROR [init] RuntimeError: Auth failed in headless mode, auth file update required."));
  EXPECT_TRUE(child_reports_logged_out(
      "RuntimeError: Failed to detect AI Studio URL after login prompt: EOF when reading a line"));
  EXPECT_FALSE(child_reports_logged_out("Auth failed"));
  EXPECT_FALSE(child_reports_logged_out("Detected redirect to login page"));
  EXPECT_FALSE(child_reports_logged_out(""));
}

TEST(QuotaLine, TheRealChildsAlert) {
  // config/global_state.py set_quota_exceeded, as the launcher logs it.
  EXPECT_TRUE(child_reports_quota("2025-01-01 10:00:00 CRITICAL [state] GLOBAL ALERT: Quota Exceeded! (gemini-2.5)"));
  EXPECT_TRUE(child_reports_quota("GLOBAL ALERT: Quota Exceeded!"));
  EXPECT_FALSE(child_reports_quota("Quota Exceeded"));
  EXPECT_FALSE(child_reports_quota("GLOBAL ALERT: quota exceeded!")) << "the child's exact words only";
  EXPECT_FALSE(child_reports_quota(""));
}

TEST(DescribeExit, SignalsAndExitCodes) {
  // A raw waitpid status: on_exit's own code is 9 for both SIGKILL and `exit 9`.
  EXPECT_EQ(describe_exit(SIGKILL), "was killed by signal 9");
  EXPECT_EQ(describe_exit(9 << 8), "exited with code 9");
  EXPECT_EQ(describe_exit(0), "exited with code 0");
}

namespace {
std::vector<std::string> split(const std::vector<std::string>& pieces, std::size_t max_line = kMaxLogLine) {
  LineSplitter splitter(max_line);
  std::vector<std::string> lines;
  auto take = [&](const std::string& line) { lines.push_back(line); };
  for (const auto& piece : pieces) splitter.feed(piece, take);
  splitter.finish(take);
  return lines;
}
}  // namespace

TEST(LineSplitter, LinesAcrossReadsWithoutCarriageReturns) {
  EXPECT_EQ(split({"one\r\ntw", "o\n", "\nthree"}), (std::vector<std::string>{"one", "two", "", "three"}));
  EXPECT_EQ(split({"a\n"}), (std::vector<std::string>{"a"})) << "no empty last line";
  EXPECT_EQ(split({}), (std::vector<std::string>{}));
}

TEST(LineSplitter, ALongLineGoesOutInPieces) {
  EXPECT_EQ(split({"abcdefg\n"}, 3), (std::vector<std::string>{"abc", "def", "g"}));
  EXPECT_EQ(split({"abc\nd"}, 3), (std::vector<std::string>{"abc", "d"})) << "a full line ends at its newline";
  EXPECT_EQ(split({std::string(kMaxLogLine + 1, 'x')}).size(), 2u);
}
