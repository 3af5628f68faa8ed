#include "coordinator/working_profile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "coordinator/json_check.hpp"

namespace coordinator {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> read_whole(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string content;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return content;
}

bool write_all(int fd, std::string_view content) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string hash_of_file(const fs::path& path) {
  const auto content = read_whole(path);
  return content ? content_hash(*content) : std::string{};
}

// The operator's file itself when it is a symbolic link: writing through it
// keeps the link.
fs::path resolved(const fs::path& path) {
  std::error_code ec;
  const fs::path target = fs::canonical(path, ec);
  return ec ? path : target;
}

}  // namespace

std::string fsync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::string("cannot open the folder: ") + std::strerror(errno);
  const bool synced = ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  return synced ? std::string{} : std::string("cannot fsync the folder: ") + std::strerror(error);
}

std::optional<FileStamp> file_stamp(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  FileStamp stamp;
  stamp.device = st.st_dev;
  stamp.inode = st.st_ino;
  stamp.size = st.st_size;
  stamp.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  stamp.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return stamp;
}

std::string content_hash(std::string_view content) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const char c : content) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  // The length too: two versions of one file rarely share both.
  return std::string(text) + ":" + std::to_string(content.size());
}

std::string_view to_string(CopyBack outcome) {
  switch (outcome) {
    case CopyBack::unchanged:
      return "unchanged";
    case CopyBack::written:
      return "written";
    case CopyBack::half_written:
      return "half_written";
    case CopyBack::operator_changed:
      return "operator_changed";
    case CopyBack::failed:
      return "failed";
  }
  return "unknown";
}

CopyBack decide_copy_back(std::string_view working_hash, bool working_is_object, std::string_view synced_hash,
                          std::string_view operator_hash) {
  if (working_hash == synced_hash) return CopyBack::unchanged;
  // The child writes in place (open "w", then the JSON): a read can catch it
  // truncated or half done, which is never a whole object.
  if (!working_is_object) return CopyBack::half_written;
  if (operator_hash.empty() || operator_hash != synced_hash) return CopyBack::operator_changed;
  return CopyBack::written;
}

std::string replace_file_atomically(const fs::path& target, std::string_view content,
                                    const std::optional<FileStamp>& expected, std::optional<mode_t> mode) {
  const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::string temp = (folder / ("." + target.filename().string() + ".coordinator-XXXXXX")).string();
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return std::string("cannot create a temporary file next to it: ") + std::strerror(errno);
  auto fail = [&](std::string reason) {
    ::close(fd);
    ::unlink(temp.c_str());
    return reason;
  };
  struct stat st {};
  if (mode) {
    ::fchmod(fd, *mode);
  } else if (::stat(target.c_str(), &st) == 0) {
    ::fchmod(fd, st.st_mode & 07777);
    if (::geteuid() == 0) {
      [[maybe_unused]] const int ignored = ::fchown(fd, st.st_uid, st.st_gid);  // keep the owner
    }
  } else {
    ::fchmod(fd, 0600);
  }
  if (!write_all(fd, content)) return fail(std::string("cannot write: ") + std::strerror(errno));
  if (::fsync(fd) != 0) return fail(std::string("cannot fsync: ") + std::strerror(errno));
  if (expected && file_stamp(target) != expected) return fail("it changed meanwhile");
  if (::close(fd) != 0) {
    ::unlink(temp.c_str());
    return std::string("cannot close: ") + std::strerror(errno);
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const std::string reason = std::string("cannot rename over it: ") + std::strerror(errno);
    ::unlink(temp.c_str());
    return reason;
  }
  fsync_folder(folder);  // the file is in place; a failed folder sync is not worth undoing it
  return {};
}

std::string WorkingProfile::create(const fs::path& source, const fs::path& folder) {
  source_ = source;
  folder_ = folder;
  path_ = folder / source.filename();
  const auto content = read_whole(source);
  if (!content) return "cannot read " + source.string() + ": " + std::strerror(errno);
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return "cannot create " + folder.string() + ": " + ec.message();
  if (::chmod(folder.c_str(), 0700) != 0) return "cannot chmod 700 " + folder.string() + ": " + std::strerror(errno);
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return "cannot create " + path_.string() + ": " + std::strerror(errno);
  ::fchmod(fd, 0600);
  const bool written = write_all(fd, *content);
  ::close(fd);
  if (!written) return "cannot write " + path_.string() + ": " + std::strerror(errno);
  synced_hash_ = content_hash(*content);
  seen_stamp_ = file_stamp(path_);
  return {};
}

CopyBack WorkingProfile::sync(bool force) {
  if (path_.empty()) return CopyBack::unchanged;
  const auto stamp = file_stamp(path_);
  if (!stamp) return CopyBack::failed;
  if (!force && stamp == seen_stamp_) return CopyBack::unchanged;
  const auto content = read_whole(path_);
  if (!content) return CopyBack::failed;
  const std::string hash = content_hash(*content);
  if (hash == synced_hash_) {
    seen_stamp_ = stamp;
    return CopyBack::unchanged;
  }
  const JsonCheck check = check_json(*content);
  const fs::path target = resolved(source_);
  const auto target_stamp = file_stamp(target);
  const std::string operator_hash = target_stamp ? hash_of_file(target) : std::string{};
  const CopyBack decision = decide_copy_back(hash, check.valid && check.is_object, synced_hash_, operator_hash);
  if (decision == CopyBack::half_written) return decision;  // seen_stamp_ stays: read again next time
  if (decision == CopyBack::operator_changed) {
    seen_stamp_ = stamp;
    return decision;
  }
  if (!replace_file_atomically(target, *content, target_stamp).empty()) return CopyBack::failed;
  synced_hash_ = hash;
  seen_stamp_ = stamp;
  return CopyBack::written;
}

bool WorkingProfile::changed_by_operator() const {
  if (source_.empty()) return false;
  return hash_of_file(source_) != synced_hash_;
}

void WorkingProfile::remove() {
  if (folder_.empty()) return;
  std::error_code ec;
  fs::remove_all(folder_, ec);
}

}  // namespace coordinator
