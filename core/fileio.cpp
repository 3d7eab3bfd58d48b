#include "core/fileio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace mu {

namespace {

std::string errno_text(int e) { return std::strerror(e); }

// close() that reports the error but never retries: on Linux the descriptor is gone even
// when close fails with EINTR, and retrying could close a descriptor another thread opened.
int close_fd(int fd) { return ::close(fd) == 0 ? 0 : errno; }

}  // namespace

std::string dir_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void fsync_dir(const std::string& dir) {
  const std::string d = dir.empty() ? "." : dir;
  int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  MU_CHECK(fd >= 0, "cannot open directory '%s' to fsync it: %s", d.c_str(), errno_text(errno).c_str());
  int rc = ::fsync(fd);
  int e = errno;
  close_fd(fd);
  // Some file systems (certain FUSE and network mounts) do not support fsync on a
  // directory and say EINVAL; there is nothing more durable we could do there.
  MU_CHECK(rc == 0 || e == EINVAL, "cannot fsync directory '%s': %s", d.c_str(), errno_text(e).c_str());
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MU_CHECK(fd >= 0, "cannot open '%s': %s", path.c_str(), errno_text(errno).c_str());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    close_fd(fd);
    MU_FAIL("cannot stat '%s': %s", path.c_str(), errno_text(e).c_str());
  }
  if (S_ISDIR(st.st_mode)) {
    close_fd(fd);
    MU_FAIL("cannot read '%s': it is a directory, not a file", path.c_str());
  }
  std::string out;
  if (st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close_fd(fd);
      MU_FAIL("cannot read '%s': %s", path.c_str(), errno_text(e).c_str());
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  close_fd(fd);
  return out;
}

// ---- AtomicFile -----------------------------------------------------------------------

AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(static_cast<long>(::getpid()))) {
  MU_CHECK(!path.empty(), "AtomicFile: empty path");
  // O_TRUNC: a temp file left by a crashed earlier process with the same pid is stale.
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  MU_CHECK(fd_ >= 0, "cannot write '%s' (creating temp file '%s'): %s", path_.c_str(), tmp_.c_str(),
           errno_text(errno).c_str());
}

AtomicFile::~AtomicFile() {
  if (!committed_) abandon();
}

void AtomicFile::abandon() noexcept {
  if (fd_ >= 0) {
    close_fd(fd_);
    fd_ = -1;
  }
  ::unlink(tmp_.c_str());  // best effort: we are already failing or unwinding
}

void AtomicFile::write(const void* data, size_t n) {
  MU_CHECK(!committed_ && fd_ >= 0, "AtomicFile '%s': write after commit or after a failure", path_.c_str());
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Linux writes at most ~2 GiB per call; ask for at most 1 GiB and loop.
    size_t chunk = n < (size_t(1) << 30) ? n : (size_t(1) << 30);
    ssize_t w = ::write(fd_, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : EIO;
      abandon();
      MU_FAIL("cannot write '%s' (temp file '%s', after %zu bytes): %s", path_.c_str(), tmp_.c_str(), written_,
              errno_text(e).c_str());
    }
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  MU_CHECK(!committed_ && fd_ >= 0, "AtomicFile '%s': commit twice or after a failure", path_.c_str());
  if (::fsync(fd_) != 0) {
    int e = errno;
    abandon();
    MU_FAIL("cannot fsync '%s' (temp file '%s'): %s", path_.c_str(), tmp_.c_str(), errno_text(e).c_str());
  }
  int e = close_fd(fd_);
  fd_ = -1;
  if (e != 0) {
    abandon();
    MU_FAIL("cannot close '%s' (temp file '%s'): %s", path_.c_str(), tmp_.c_str(), errno_text(e).c_str());
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    e = errno;
    abandon();
    MU_FAIL("cannot rename '%s' to '%s': %s", tmp_.c_str(), path_.c_str(), errno_text(e).c_str());
  }
  committed_ = true;  // from here on the file is in place; only durability of the rename remains
  fsync_dir(dir_name(path_));
}

void write_file_atomic(const std::string& path, const void* data, size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}

namespace {
// Absolute, normalized, symlinks resolved where the path exists, no trailing separator.
std::filesystem::path resolved(const std::string& p) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
  if (ec) r = fs::absolute(p, ec);
  fs::path out;
  for (const fs::path& part : r.lexically_normal())
    if (!part.empty()) out /= part;
  return out;
}
}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ec_a, ec_b, ec;
  if (fs::exists(a, ec_a) && fs::exists(b, ec_b)) {
    const bool same = fs::equivalent(a, b, ec);
    if (!ec) return same;
  }
  return resolved(a) == resolved(b);
}

bool path_within(const std::string& path, const std::string& dir) {
  const std::filesystem::path p = resolved(path), d = resolved(dir);
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++pi)
    if (pi == p.end() || *pi != *di) return false;
  return true;
}

}  // namespace mu
