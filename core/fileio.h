// Small POSIX file helpers shared by every writer of the engine: atomic replacement of a
// file (temp name, fsync, rename, fsync of the directory) so a crash mid-write never leaves
// a truncated checkpoint under the real name, and reads that fail with the path and errno text.
#pragma once
#include <cstddef>
#include <string>

namespace mu {

// Writes n bytes at data to `path` atomically: they go to "<path>.tmp.<pid>", which is
// fsynced and renamed over `path`, then the directory is fsynced. On failure the temp file
// is removed, `path` keeps its old contents, and a mu::Error names the path and the errno text.
void write_file_atomic(const std::string& path, const void* data, size_t n);

// The streaming form, for files too large to assemble in memory first:
//   AtomicFile f(path); f.write(p, n); ...; f.commit();
// Nothing is visible under `path` until commit(). Destroying an AtomicFile that was not
// committed (an exception unwound past it, or commit() itself failed) removes the temp file.
// Not thread-safe; one writer per path per process (the temp name carries only the pid).
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();  // fsync, close, rename over path(), fsync the directory
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  size_t bytes_written() const { return written_; }

 private:
  void abandon() noexcept;  // close and unlink the temp file, never throws
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  size_t written_ = 0;
  bool committed_ = false;
};

// fsync a directory so entries created or renamed in it survive a crash. "" means ".".
void fsync_dir(const std::string& dir);

// The directory part of a path ("a/b/c.st" -> "a/b", "c.st" -> ".", "/c" -> "/").
std::string dir_name(const std::string& path);

// True when something (file, directory, ...) exists at `path`.
bool file_exists(const std::string& path);

// Whether two paths name one file: the same file when both exist (hard links, symlinks,
// another spelling), else the same absolute normalized path. Tools refuse an output that is
// one of their inputs with it.
bool same_file(const std::string& a, const std::string& b);
// Whether `path` is `dir` or lies below it (symlinks resolved where the paths exist).
bool path_within(const std::string& path, const std::string& dir);

// The whole file as a string; a clear error naming the path when it is missing, a
// directory, or unreadable.
std::string read_text_file(const std::string& path);

}  // namespace mu
