#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/process_tree.hpp"

using namespace coordinator;
using namespace std::string_literals;

namespace {

ProcInfo proc(pid_t pid, pid_t ppid, pid_t pgrp, std::string tree = {}, std::uint64_t start = 100, char state = 'S') {
  ProcInfo info;
  info.stat.pid = pid;
  info.stat.ppid = ppid;
  info.stat.pgrp = pgrp;
  info.stat.session = pgrp;
  info.stat.start_time = start;
  info.stat.state = state;
  info.stat.comm = "p" + std::to_string(pid);
  info.tree = std::move(tree);
  return info;
}

struct Query {
  std::string marker;
  std::vector<pid_t> roots;
  std::vector<pid_t> groups;
  std::vector<ProcId> known;
  std::vector<pid_t> exclude;
  operator TreeQuery() const {  // NOLINT: implicit on purpose, for short test lines
    TreeQuery query;
    query.marker = marker;
    query.roots = roots;
    query.groups = groups;
    query.known = known;
    query.exclude = exclude;
    return query;
  }
};

Query with_marker(std::string marker) {
  Query q;
  q.marker = std::move(marker);
  return q;
}

std::vector<pid_t> pids(const std::vector<ProcInfo>& members) {
  std::vector<pid_t> out;
  for (const auto& member : members) out.push_back(member.stat.pid);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(ProcStat, ParsesTheFieldsAfterTheCommandName) {
  // A real line from /proc/<pid>/stat, shortened after rss.
  const std::string line =
      "4242 (python3) S 4200 4242 4100 34816 4242 4194560 1500 0 2 0 30 12 0 0 20 0 3 0 987654 "
      "52428800 1234 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0\n";
  const auto stat = parse_proc_stat(line);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->pid, 4242);
  EXPECT_EQ(stat->comm, "python3");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->ppid, 4200);
  EXPECT_EQ(stat->pgrp, 4242);
  EXPECT_EQ(stat->session, 4100);
  EXPECT_EQ(stat->start_time, 987654u);
  EXPECT_EQ(stat->rss_pages, 1234u);
}

TEST(ProcStat, ACommandNameWithSpacesAndParentheses) {
  const std::string line = "77 (Web Content (x)) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 1000 9 0\n";
  const auto stat = parse_proc_stat(line);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->comm, "Web Content (x)");
  EXPECT_EQ(stat->state, 'R');
  EXPECT_EQ(stat->ppid, 1);
  EXPECT_EQ(stat->start_time, 555u);
  EXPECT_EQ(stat->rss_pages, 9u);
}

TEST(ProcStat, ANegativeRssCountsAsZero) {
  const auto stat = parse_proc_stat("5 (x) Z 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7 0 -3 0");
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->state, 'Z');
  EXPECT_EQ(stat->rss_pages, 0u);
}

TEST(ProcStat, RejectsWhatIsNotAStatLine) {
  for (const std::string& bad : {""s, "garbage"s, "12 (x"s, "x (y) S 1 2 3"s, "12 (x) S 1 2"s, "(x) S 1 2 3 4 5"s,
                                 "12 (x) SS 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7 0 3"s,
                                 "12 (x) S a 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7 0 3"s}) {
    EXPECT_FALSE(parse_proc_stat(bad)) << bad;
  }
}

TEST(ProcStat, ReadsThisProcess) {
  const auto self = scan_processes();
  const auto me = std::find_if(self.begin(), self.end(), [](const ProcInfo& p) { return p.stat.pid == ::getpid(); });
  ASSERT_NE(me, self.end());
  EXPECT_EQ(me->stat.ppid, ::getppid());
  EXPECT_EQ(me->stat.pgrp, ::getpgrp());
  EXPECT_GT(me->stat.rss_pages, 0u);
}

TEST(Environ, FindsAVariableByExactName) {
  const std::string block = "PATH=/bin\0COORDINATOR_TREE_X=no\0COORDINATOR_TREE=f/1/2\0EMPTY=\0LAST=z"s;
  EXPECT_EQ(environ_value(block, "COORDINATOR_TREE"), "f/1/2");
  EXPECT_EQ(environ_value(block, "PATH"), "/bin");
  EXPECT_EQ(environ_value(block, "EMPTY"), "");
  EXPECT_EQ(environ_value(block, "LAST"), "z");
  EXPECT_FALSE(environ_value(block, "COORDINATOR"));
  EXPECT_FALSE(environ_value(block, "MISSING"));
  EXPECT_FALSE(environ_value("", "PATH"));
  EXPECT_FALSE(environ_value("PATH", "PATH")) << "no '='";
}

TEST(Marker, FleetSlotAndGeneration) {
  const std::string fleet = make_fleet_id();
  EXPECT_EQ(fleet_owner(fleet), ::getpid());
  EXPECT_NE(make_fleet_id(), fleet) << "unique per run";
  EXPECT_EQ(tree_marker("f", 3, 7), "f/3/7");
  EXPECT_TRUE(marker_within("f/3/7", "f"));
  EXPECT_TRUE(marker_within("f/3/7", "f/3"));
  EXPECT_TRUE(marker_within("f/3/7", "f/3/7"));
  EXPECT_FALSE(marker_within("f/3/7", "f/3/70"));
  EXPECT_FALSE(marker_within("f/3/70", "f/3/7")) << "the generation is a whole part";
  EXPECT_FALSE(marker_within("f/31/7", "f/3"));
  EXPECT_FALSE(marker_within("g/3/7", "f"));
  EXPECT_FALSE(marker_within("", "f"));
  EXPECT_FALSE(marker_within("f/3/7", "")) << "an empty scope is nothing, not everything";
  EXPECT_EQ(fleet_owner("nodash"), 0);
  EXPECT_EQ(fleet_owner("x-1"), 0);
}

TEST(SelectTree, TheLaunchersBrowserInItsOwnSessionAndFirefoxInItsOwnGroup) {
  // launcher 100 (group 100), browser 101 (new session), firefox 102 (own
  // group), its content process 103, and an unrelated process 200.
  const std::vector<ProcInfo> snapshot{
      proc(1, 0, 1),
      proc(50, 1, 50),  // init and the coordinator
      proc(100, 50, 100, "f/0/1"),
      proc(101, 100, 101, "f/0/1"),
      proc(102, 101, 102, "f/0/1"),
      proc(103, 102, 102, "f/0/1"),
      proc(200, 1, 200),
  };
  EXPECT_EQ(pids(select_tree(snapshot, with_marker("f/0/1"))), (std::vector<pid_t>{100, 101, 102, 103}));
  // The process group alone misses the browser and Firefox; with the parent links, it finds them.
  EXPECT_EQ(pids(select_tree(snapshot, Query{"", {}, {100}, {}, {}})), (std::vector<pid_t>{100, 101, 102, 103}));
  EXPECT_EQ(pids(select_tree(snapshot, Query{"", {102}, {}, {}, {}})), (std::vector<pid_t>{102, 103}));
}

TEST(SelectTree, AnOrphanWithoutItsParentIsFoundByItsMarker) {
  // The launcher was SIGKILLed: the browser (marked) is re-parented to the
  // coordinator (a subreaper, 50); Firefox stays under it.
  const std::vector<ProcInfo> snapshot{proc(50, 1, 50), proc(101, 50, 101, "f/0/1"), proc(102, 101, 102, "f/0/1"),
                                       proc(300, 50, 300, "f/1/1")};
  EXPECT_EQ(pids(select_tree(snapshot, Query{"f/0/1", {}, {100}, {}, {50}})), (std::vector<pid_t>{101, 102}));
  EXPECT_EQ(pids(select_tree(snapshot, Query{"f", {}, {}, {}, {50}})), (std::vector<pid_t>{101, 102, 300}))
      << "the fleet id finds every tree";
}

TEST(SelectTree, AnotherGenerationOfTheSameSlotIsNotAMember) {
  const std::vector<ProcInfo> snapshot{proc(101, 1, 101, "f/0/1"), proc(111, 1, 111, "f/0/2"),
                                       proc(121, 1, 121, "f/0/10")};
  EXPECT_EQ(pids(select_tree(snapshot, with_marker("f/0/1"))), (std::vector<pid_t>{101}));
}

TEST(SelectTree, KnownMembersWithoutAMarkerCountOnlyWhileTheyAreTheSameProcess) {
  // 102 dropped the environment and lost its parent: known from an earlier
  // scan. 103 has the same pid as a known member but started later: reused.
  const std::vector<ProcInfo> snapshot{proc(102, 1, 102, "", 500), proc(104, 102, 102, "", 600),
                                       proc(103, 1, 103, "", 999)};
  const Query query{"", {}, {}, {{102, 500}, {103, 700}}, {}};
  EXPECT_EQ(pids(select_tree(snapshot, query)), (std::vector<pid_t>{102, 104}));
}

TEST(SelectTree, ExcludedProcessesAndTheirChildrenStayOutAndZombiesAreDead) {
  // The coordinator (50) is the parent of every launcher: excluded, it must
  // not pull in every tree. A zombie member is already dead.
  const std::vector<ProcInfo> snapshot{proc(50, 1, 100, "f/0/1"), proc(100, 50, 100, "f/0/1"),
                                       proc(101, 100, 100, "", 100, 'Z'), proc(400, 50, 400, "f/1/1")};
  EXPECT_EQ(pids(select_tree(snapshot, Query{"f/0/1", {}, {100}, {}, {50}})), (std::vector<pid_t>{100}));
  EXPECT_TRUE(select_tree(snapshot, Query{}).empty()) << "an empty query selects nothing";
}

TEST(SelectTree, RssAddsUpOverTheTree) {
  std::vector<ProcInfo> members{proc(1, 0, 1), proc(2, 1, 1)};
  members[0].stat.rss_pages = 10;
  members[1].stat.rss_pages = 5;
  EXPECT_EQ(resident_bytes(members), 15u * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(describe(members, 1), "1 (p1), ...");
}

TEST(ScanProcesses, FindsAMarkedDescendantInItsOwnSession) {
  // A real process tree: a child in a new session with the marker in its environment.
  const std::string marker = make_fleet_id() + "/9/1";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setsid();
    const std::string variable = std::string(kTreeVariable) + "=" + marker;
    char* const argv[] = {const_cast<char*>("sleep"), const_cast<char*>("30"), nullptr};
    char* const envp[] = {const_cast<char*>(variable.c_str()), nullptr};
    ::execve("/bin/sleep", argv, envp);
    ::_exit(127);
  }
  std::vector<ProcInfo> members;
  for (int i = 0; i < 100 && members.empty(); ++i) {
    members = select_tree(scan_processes(), with_marker(marker));
    if (members.empty()) ::usleep(20 * 1000);
  }
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].stat.pid, child);
  MarkerCache cache;
  for (int round = 0; round < 2; ++round) {  // read, then from the cache
    const auto cached = select_tree(scan_processes(&cache), with_marker(marker));
    ASSERT_EQ(cached.size(), 1u) << "round " << round;
    EXPECT_EQ(cached[0].stat.pid, child);
  }
  EXPECT_TRUE(cache.count({child, members[0].stat.start_time}));
  EXPECT_EQ(members[0].stat.session, child);
  EXPECT_EQ(members[0].tree, marker);
  EXPECT_EQ(signal_each(members, SIGKILL), 1u);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
}
