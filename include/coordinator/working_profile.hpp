#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace coordinator {

// What identifies one version of a file without reading it.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
std::optional<FileStamp> file_stamp(const std::filesystem::path& path);

// A short fingerprint of a file's content (64-bit FNV-1a, hex): tells one
// version from another, never written anywhere with the content.
std::string content_hash(std::string_view content);

enum class CopyBack {
  unchanged,         // the working copy holds what the operator's file holds
  written,           // the child's refreshed cookies are now in the operator's file
  half_written,      // the child is writing it (not a whole JSON object yet): try again later
  operator_changed,  // the operator's file is no longer what the coordinator last put there: left alone
  failed,            // could not read or write (logged by the caller)
};
std::string_view to_string(CopyBack outcome);

// The rule for copying a child's rewrite of its working copy back into the
// operator's file: only a whole JSON object that differs from what was last
// synced, and only while the operator's file still holds what was last
// synced (`operator_hash` empty: the file is gone).
CopyBack decide_copy_back(std::string_view working_hash, bool working_is_object, std::string_view synced_hash,
                          std::string_view operator_hash);

// Writes `content` to `target` atomically: a temporary file in the same
// folder with the target's mode and owner (or `mode`, when given), fsync,
// rename over the target, fsync of the folder. With `expected`, gives up
// (returns a reason) if the target is no longer that version just before the
// rename. Returns "" on success.
std::string replace_file_atomically(const std::filesystem::path& target, std::string_view content,
                                    const std::optional<FileStamp>& expected,
                                    std::optional<mode_t> mode = std::nullopt);

// fsync of a folder, so that a rename or a new entry in it reaches the disk; "" or the reason.
std::string fsync_folder(const std::filesystem::path& folder);

// One child's private copy of its operator's profile file. The real child
// rewrites its --active-auth-json in place (cookie refresh, and at every
// clean stop), so it is given this copy, never the operator's file: an old
// child's last save cannot land on a file the operator has just replaced.
// The coordinator copies the child's rewrites back (`sync`) while the
// operator's file is still the version the coordinator last synced.
class WorkingProfile {
 public:
  // Copies `source` to `folder`/<its file name> (folder 0700, copy 0600).
  // Returns "" or a reason (never the content).
  std::string create(const std::filesystem::path& source, const std::filesystem::path& folder);

  const std::filesystem::path& source() const { return source_; }
  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& folder() const { return folder_; }
  bool empty() const { return path_.empty(); }

  // Copies a new rewrite of the working copy back into the operator's file
  // (see decide_copy_back). Cheap when nothing changed (one stat); `force`
  // reads the copy even when its stamp looks unchanged (a final sync).
  CopyBack sync(bool force = false);
  // True when the operator's file no longer holds what the coordinator last
  // synced: someone else changed (or removed) it.
  bool changed_by_operator() const;
  // Deletes the working copy and its folder.
  void remove();

 private:
  std::filesystem::path source_;
  std::filesystem::path folder_;
  std::filesystem::path path_;
  std::string synced_hash_;              // the operator's file as the coordinator last read or wrote it
  std::optional<FileStamp> seen_stamp_;  // the working copy as last handled
};

}  // namespace coordinator
