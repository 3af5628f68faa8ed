#include "coordinator/process_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <random>
#include <unordered_map>

namespace coordinator {

namespace {

template <class Number>
bool parse_number(std::string_view text, Number& out) {
  const auto* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, out);
  return result.ec == std::errc{} && result.ptr == end;
}

// Reads a whole small file with plain syscalls (the orphan guard uses this too).
bool read_small_file(const std::string& path, std::string& out, std::size_t limit) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buffer[8192];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

}  // namespace

std::string make_fleet_id() {
  std::random_device device;
  const std::uint64_t random = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  char text[64];
  std::snprintf(text, sizeof text, "%d-%016llx", static_cast<int>(::getpid()), static_cast<unsigned long long>(random));
  return text;
}

std::string tree_marker(std::string_view fleet, std::size_t slot, unsigned generation) {
  return std::string(fleet) + "/" + std::to_string(slot) + "/" + std::to_string(generation);
}

bool marker_within(std::string_view marker, std::string_view scope) {
  if (scope.empty() || marker.size() < scope.size() || marker.substr(0, scope.size()) != scope) return false;
  return marker.size() == scope.size() || marker[scope.size()] == '/';
}

pid_t fleet_owner(std::string_view fleet) {
  const auto dash = fleet.find('-');
  pid_t pid = 0;
  if (dash == std::string_view::npos || !parse_number(fleet.substr(0, dash), pid) || pid <= 1) return 0;
  return pid;
}

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  const auto open = text.find('(');
  const auto close = text.rfind(')');  // the name itself may hold ')'
  if (open == std::string_view::npos || close == std::string_view::npos || close < open || open == 0) {
    return std::nullopt;
  }
  ProcStat stat;
  std::string_view pid_text = text.substr(0, open);
  while (!pid_text.empty() && pid_text.back() == ' ') pid_text.remove_suffix(1);
  if (!parse_number(pid_text, stat.pid) || stat.pid <= 0) return std::nullopt;
  stat.comm = std::string(text.substr(open + 1, close - open - 1));
  // Fields 3 onwards, one space apart: state ppid pgrp session ... starttime (22) vsize (23) rss (24).
  std::vector<std::string_view> fields;
  std::string_view rest = text.substr(close + 1);
  while (!rest.empty() && fields.size() < 22) {
    const auto start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const auto end = rest.find_first_of(" \n");
    fields.push_back(rest.substr(0, end));
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  if (fields.size() < 22 || fields[0].size() != 1) return std::nullopt;
  stat.state = fields[0][0];
  long long rss = 0;  // read signed: a process being torn down may show a negative count
  if (!parse_number(fields[1], stat.ppid) || !parse_number(fields[2], stat.pgrp) ||
      !parse_number(fields[3], stat.session) || !parse_number(fields[19], stat.start_time) ||
      !parse_number(fields[21], rss)) {
    return std::nullopt;
  }
  stat.rss_pages = rss > 0 ? static_cast<std::uint64_t>(rss) : 0;
  return stat;
}

std::optional<std::string_view> environ_value(std::string_view environ, std::string_view name) {
  while (!environ.empty()) {
    const auto end = environ.find('\0');
    const std::string_view entry = environ.substr(0, end);
    if (entry.size() > name.size() && entry.substr(0, name.size()) == name && entry[name.size()] == '=') {
      return entry.substr(name.size() + 1);
    }
    if (end == std::string_view::npos) break;
    environ.remove_prefix(end + 1);
  }
  return std::nullopt;
}

std::vector<ProcInfo> select_tree(const std::vector<ProcInfo>& snapshot, const TreeQuery& query) {
  auto contains = [](const auto& list, const auto& value) {
    return std::find(list.begin(), list.end(), value) != list.end();
  };
  std::unordered_map<pid_t, std::vector<std::size_t>> children;
  for (std::size_t i = 0; i < snapshot.size(); ++i) children[snapshot[i].stat.ppid].push_back(i);
  std::vector<bool> member(snapshot.size(), false);
  std::vector<std::size_t> pending;
  auto usable = [&](std::size_t i) {
    const ProcStat& stat = snapshot[i].stat;
    return stat.pid > 1 && !contains(query.exclude, stat.pid);
  };
  for (std::size_t i = 0; i < snapshot.size(); ++i) {
    const ProcInfo& info = snapshot[i];
    const bool seed = (!query.marker.empty() && marker_within(info.tree, query.marker)) ||
                      contains(query.roots, info.stat.pid) || contains(query.groups, info.stat.pgrp) ||
                      contains(query.known, ProcId{info.stat.pid, info.stat.start_time});
    if (seed && usable(i)) {
      member[i] = true;
      pending.push_back(i);
    }
  }
  while (!pending.empty()) {
    const std::size_t i = pending.back();
    pending.pop_back();
    const auto found = children.find(snapshot[i].stat.pid);
    if (found == children.end()) continue;
    for (const std::size_t child : found->second) {
      if (!member[child] && usable(child)) {
        member[child] = true;
        pending.push_back(child);
      }
    }
  }
  std::vector<ProcInfo> members;
  for (std::size_t i = 0; i < snapshot.size(); ++i) {
    if (member[i] && !snapshot[i].gone()) members.push_back(snapshot[i]);
  }
  return members;
}

std::vector<ProcInfo> scan_processes(MarkerCache* cache) {
  std::vector<ProcInfo> processes;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return processes;
  MarkerCache seen;
  std::string text;
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    const std::string base = std::string("/proc/") + entry->d_name;
    if (!read_small_file(base + "/stat", text, 4096)) continue;
    auto stat = parse_proc_stat(text);
    if (!stat) continue;
    ProcInfo info{std::move(*stat), {}};
    const std::pair<pid_t, std::uint64_t> key{info.stat.pid, info.stat.start_time};
    const auto cached = cache != nullptr ? cache->find(key) : MarkerCache::iterator{};
    if (cache != nullptr && cached != cache->end()) {
      info.tree = cached->second;
    } else if (read_small_file(base + "/environ", text, 1 << 20)) {
      if (const auto marker = environ_value(text, kTreeVariable)) info.tree = std::string(*marker);
    }
    if (cache != nullptr) seen.emplace(key, info.tree);
    processes.push_back(std::move(info));
  }
  ::closedir(proc);
  if (cache != nullptr) *cache = std::move(seen);
  return processes;
}

std::uint64_t resident_bytes(const std::vector<ProcInfo>& members) {
  static const long page = ::sysconf(_SC_PAGESIZE);
  std::uint64_t total = 0;
  for (const auto& member : members) total += member.stat.rss_pages * static_cast<std::uint64_t>(page);
  return total;
}

std::size_t signal_each(const std::vector<ProcInfo>& members, int signal) {
  std::size_t sent = 0;
  for (const auto& member : members) {
    if (member.stat.pid > 1 && ::kill(member.stat.pid, signal) == 0) ++sent;
  }
  return sent;
}

std::vector<ProcId> ids_of(const std::vector<ProcInfo>& members) {
  std::vector<ProcId> ids;
  ids.reserve(members.size());
  for (const auto& member : members) ids.push_back({member.stat.pid, member.stat.start_time});
  return ids;
}

std::string describe(const std::vector<ProcInfo>& members, std::size_t limit) {
  std::string text;
  for (std::size_t i = 0; i < members.size() && i < limit; ++i) {
    if (!text.empty()) text += ", ";
    text += std::to_string(members[i].stat.pid) + " (" + members[i].stat.comm + ")";
  }
  if (members.size() > limit) text += ", ...";
  return text;
}

}  // namespace coordinator
