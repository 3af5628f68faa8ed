#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coordinator {

// A child's whole process tree (launcher, browser in its own session, Firefox
// in yet another group) is found through a variable in its environment,
// which every descendant inherits whatever its session or group:
// COORDINATOR_TREE=<fleet>/<slot>/<generation>. The fleet id is unique per
// coordinator run, so the orphan guard can find every tree of its coordinator
// and nothing else, and the generation keeps a slot's next child apart from
// what is left of the previous one.
inline constexpr std::string_view kTreeVariable = "COORDINATOR_TREE";

// A fleet id unique per coordinator run: "<pid>-<16 hex digits>".
std::string make_fleet_id();
std::string tree_marker(std::string_view fleet, std::size_t slot, unsigned generation);
// True when `marker` is `scope` or lies under it ("f/1/2" is under "f" and "f/1").
bool marker_within(std::string_view marker, std::string_view scope);
// The pid a fleet id was made by (its first part), or 0.
pid_t fleet_owner(std::string_view fleet);

// The fields of /proc/<pid>/stat the supervisor uses.
struct ProcStat {
  pid_t pid = 0;
  std::string comm;  // the command name, without its parentheses
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  std::uint64_t start_time = 0;  // clock ticks after boot: with the pid, names one process
  std::uint64_t rss_pages = 0;
};

// Parses one /proc/<pid>/stat line (the command name is in parentheses and
// may hold spaces and parentheses itself).
std::optional<ProcStat> parse_proc_stat(std::string_view text);
// The value of `name` in a /proc/<pid>/environ block (NUL-separated entries).
std::optional<std::string_view> environ_value(std::string_view environ, std::string_view name);

// One process and the value of its COORDINATOR_TREE (empty when it has none).
struct ProcInfo {
  ProcStat stat;
  std::string tree;
  bool gone() const { return stat.state == 'Z' || stat.state == 'X' || stat.state == 'x'; }
};

// A process, robust to pid reuse.
struct ProcId {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
  bool operator==(const ProcId&) const = default;
};

// What belongs to one tree (or, with a fleet id as `marker`, to every tree).
struct TreeQuery {
  std::string marker;          // members carry this marker or one under it; empty: none
  std::vector<pid_t> roots;    // these processes
  std::vector<pid_t> groups;   // every process in these process groups
  std::vector<ProcId> known;   // members seen before, if still the same process
  std::vector<pid_t> exclude;  // never members (the coordinator, the guard)
};

// The members of a tree in a snapshot: what the query names, plus every
// descendant (by parent pid) of those. Zombies are left out: they are dead.
std::vector<ProcInfo> select_tree(const std::vector<ProcInfo>& snapshot, const TreeQuery& query);

// The markers of processes seen before. A process's /proc/<pid>/environ is
// the block it was started with, so its marker never changes: a scan that
// keeps this reads each environment once.
using MarkerCache = std::map<std::pair<pid_t, std::uint64_t>, std::string>;

// Every process in /proc. The environment is read (for the marker) only
// where it can be: the processes of this user. With `cache`, only those of
// processes not seen before (and the cache forgets the ones gone).
std::vector<ProcInfo> scan_processes(MarkerCache* cache = nullptr);

std::uint64_t resident_bytes(const std::vector<ProcInfo>& members);
// Sends `signal` to each member by pid; returns how many were signalled.
std::size_t signal_each(const std::vector<ProcInfo>& members, int signal);
std::vector<ProcId> ids_of(const std::vector<ProcInfo>& members);
// "1234 (python3), 1240 (firefox)", at most `limit` entries, for the log.
std::string describe(const std::vector<ProcInfo>& members, std::size_t limit = 6);

}  // namespace coordinator
