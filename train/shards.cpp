#include "train/shards.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "core/error.h"
#include "core/fileio.h"

// Shards are little-endian on disk and are read by plain loads from the mapping.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token shards assume a little-endian host");

namespace mu {

int shard_token_width(int vocab_size) {
  MU_CHECK(vocab_size > 0, "shard_token_width: vocabulary size must be positive, got %d", vocab_size);
  return vocab_size <= 65536 ? 2 : 4;
}

// ---------------------------------------------------------------------------------------------
// Writing

struct ShardWriter::Impl {
  AtomicFile file;
  int64_t count;
  int64_t written = 0;
  int width;
  int vocab;
  std::vector<unsigned char> buf;  // staging for the narrowed tokens
  Impl(const std::string& path, int64_t c, int w, int v) : file(path), count(c), width(w), vocab(v) {}
};

ShardWriter::ShardWriter(const std::string& path, int64_t count, int width, int vocab_size) {
  MU_CHECK(width == 2 || width == 4, "shard %s: token width must be 2 or 4 bytes, got %d", path.c_str(), width);
  MU_CHECK(count >= 0 && count <= INT32_MAX,
           "shard %s: %lld tokens do not fit one shard (the header count is int32: at most %d)", path.c_str(),
           (long long)count, INT32_MAX);
  MU_CHECK(vocab_size >= 0, "shard %s: vocabulary size must be >= 0 (0 = unknown), got %d", path.c_str(), vocab_size);
  MU_CHECK(!(width == 2 && vocab_size > 65536),
           "shard %s: a vocabulary of %d does not fit uint16 tokens", path.c_str(), vocab_size);
  impl_ = std::make_unique<Impl>(path, count, width, vocab_size);
  int32_t header[kShardHeaderInts] = {};
  header[0] = width == 2 ? kShardMagicU16 : kShardMagicU32;
  header[1] = width == 2 ? kShardVersionU16 : kShardVersionU32;
  header[2] = static_cast<int32_t>(count);
  header[3] = vocab_size;
  impl_->file.write(header, sizeof header);
}

ShardWriter::~ShardWriter() = default;  // an uncommitted AtomicFile removes its temp file

void ShardWriter::write(const uint32_t* tokens, int64_t n) {
  Impl& w = *impl_;
  const std::string& path = w.file.path();
  MU_CHECK(n >= 0 && w.written + n <= w.count, "shard %s: writing %lld more tokens exceeds the declared count %lld",
           path.c_str(), (long long)n, (long long)w.count);
  // Tokens must fit the vocabulary when it is known, and the width in any case.
  uint64_t limit = w.vocab > 0 ? (uint64_t)w.vocab : (w.width == 2 ? 65536ull : (1ull << 32));
  constexpr int64_t kChunk = 1 << 16;
  w.buf.resize(kChunk * w.width);
  for (int64_t done = 0; done < n; done += kChunk) {
    int64_t m = std::min(kChunk, n - done);
    const uint32_t* src = tokens + done;
    for (int64_t i = 0; i < m; i++)
      MU_CHECK(src[i] < limit, "shard %s: token %u at offset %lld is >= %s (%llu)", path.c_str(), src[i],
               (long long)(w.written + done + i), w.vocab > 0 ? "the vocabulary size" : "the uint16 range",
               (unsigned long long)limit);
    if (w.width == 2) {
      auto* dst = reinterpret_cast<uint16_t*>(w.buf.data());
      for (int64_t i = 0; i < m; i++) dst[i] = static_cast<uint16_t>(src[i]);
      w.file.write(dst, m * 2);
    } else {
      w.file.write(src, m * 4);
    }
  }
  w.written += n;
}

void ShardWriter::commit() {
  Impl& w = *impl_;
  MU_CHECK(w.written == w.count, "shard %s: %lld tokens written but the header declares %lld",
           w.file.path().c_str(), (long long)w.written, (long long)w.count);
  w.file.commit();
}

void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, int vocab_size) {
  MU_CHECK(vocab_size >= 0, "shard %s: vocabulary size must be >= 0 (0 = unknown), got %d", path.c_str(), vocab_size);
  int width;
  if (vocab_size > 0) {
    width = shard_token_width(vocab_size);
  } else {
    uint32_t mx = 0;
    for (uint32_t t : tokens) mx = std::max(mx, t);
    width = mx <= 65535 ? 2 : 4;
  }
  ShardWriter w(path, static_cast<int64_t>(tokens.size()), width, vocab_size);
  w.write(tokens.data(), static_cast<int64_t>(tokens.size()));
  w.commit();
}

// ---------------------------------------------------------------------------------------------
// Reading

Shard::Shard(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MU_CHECK(fd >= 0, "shard %s: cannot open: %s", path.c_str(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    MU_FAIL("shard %s: not a regular file", path.c_str());
  }
  int64_t bytes = st.st_size;
  int32_t header[kShardHeaderInts] = {};
  if (bytes < kShardHeaderBytes || ::pread(fd, header, sizeof header, 0) != (ssize_t)sizeof header) {
    ::close(fd);
    MU_FAIL("shard %s: %lld bytes, shorter than the %lld-byte header (truncated or not a token shard)",
            path.c_str(), (long long)bytes, (long long)kShardHeaderBytes);
  }
  auto bad = [&](const std::string& msg) {
    ::close(fd);
    MU_FAIL("shard %s: %s", path.c_str(), msg.c_str());
  };
  if (header[0] == kShardMagicU16) width_ = 2;
  else if (header[0] == kShardMagicU32) width_ = 4;
  else
    bad(strformat("bad magic %d (expected %d for uint16 tokens or %d for uint32 tokens)", header[0], kShardMagicU16,
                  kShardMagicU32));
  int32_t want_version = width_ == 2 ? kShardVersionU16 : kShardVersionU32;
  if (header[1] != want_version)
    bad(strformat("version %d does not match magic %d (expected version %d)", header[1], header[0], want_version));
  if (header[2] < 0) bad(strformat("negative token count %d in the header", header[2]));
  if (header[3] < 0) bad(strformat("negative vocabulary size %d in header[3]", header[3]));
  count_ = header[2];
  vocab_hint_ = header[3];
  int64_t want_bytes = kShardHeaderBytes + count_ * width_;
  if (bytes != want_bytes)
    bad(strformat("the header declares %lld tokens of %d bytes (%lld bytes with the header) but the file has %lld "
                  "bytes (truncated or not a token shard)",
                  (long long)count_, width_, (long long)want_bytes, (long long)bytes));
  map_bytes_ = static_cast<size_t>(bytes);
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    MU_FAIL("shard %s: mmap failed: %s", path.c_str(), std::strerror(map_errno));
  }
  tokens_ = static_cast<const unsigned char*>(map_) + kShardHeaderBytes;
}

Shard::~Shard() {
  if (map_) ::munmap(map_, map_bytes_);
}

uint32_t Shard::at(int64_t i) const {
  MU_CHECK(i >= 0 && i < count_, "shard %s: token index %lld out of range [0, %lld)", path_.c_str(), (long long)i,
           (long long)count_);
  if (width_ == 2) return reinterpret_cast<const uint16_t*>(tokens_)[i];
  return reinterpret_cast<const uint32_t*>(tokens_)[i];
}

void Shard::copy_to(int64_t begin, int64_t n, int32_t* out) const {
  if (width_ == 2) {
    const uint16_t* p = reinterpret_cast<const uint16_t*>(tokens_) + begin;
    for (int64_t i = 0; i < n; i++) out[i] = p[i];
  } else {
    // Tokens were validated < vocab_size (an int) at load, so they fit int32.
    const uint32_t* p = reinterpret_cast<const uint32_t*>(tokens_) + begin;
    for (int64_t i = 0; i < n; i++) out[i] = static_cast<int32_t>(p[i]);
  }
}

int64_t Shard::find_at_least(int64_t begin, int64_t end, uint32_t limit) const {
  if (width_ == 2) {
    if (limit > 65535) return -1;  // every uint16 fits
    const uint16_t* p = reinterpret_cast<const uint16_t*>(tokens_);
    for (int64_t i = begin; i < end; i++)
      if (p[i] >= limit) return i;
  } else {
    const uint32_t* p = reinterpret_cast<const uint32_t*>(tokens_);
    for (int64_t i = begin; i < end; i++)
      if (p[i] >= limit) return i;
  }
  return -1;
}

static bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

ShardSet::ShardSet(const std::string& pattern, int vocab_size) : pattern_(pattern), vocab_size_(vocab_size) {
  MU_CHECK(vocab_size > 0, "shards '%s': the model's vocabulary size must be positive, got %d", pattern.c_str(),
           vocab_size);
  glob_t g{};
  int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> paths;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; i++) paths.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (rc == GLOB_NOMATCH || (rc == 0 && paths.empty())) {
    if (has_glob_chars(pattern)) MU_FAIL("no token shard matches the pattern '%s'", pattern.c_str());
    MU_FAIL("token shard '%s' does not exist", pattern.c_str());
  }
  MU_CHECK(rc == 0, "shards '%s': glob failed (%s)", pattern.c_str(),
           rc == GLOB_NOSPACE ? "out of memory" : "read error");
  // Byte-wise order, independent of the locale glob(3) collates with.
  std::sort(paths.begin(), paths.end());
  starts_.push_back(0);
  for (const auto& p : paths) {
    shards_.push_back(std::make_unique<Shard>(p));
    starts_.push_back(starts_.back() + shards_.back()->size());
  }
  // Shards that record their tokenizer's vocabulary must agree: two tokenizers' ids in one
  // stream are noise even when every id is in range.
  const Shard* first = nullptr;
  for (const auto& sh : shards_) {
    if (sh->vocab_hint() == 0) continue;
    if (!first) first = sh.get();
    MU_CHECK(sh->vocab_hint() == first->vocab_hint(),
             "shards '%s' mix tokenizers: %s records a vocabulary of %d, %s one of %d (header field vocab_size)",
             pattern.c_str(), first->path().c_str(), first->vocab_hint(), sh->path().c_str(), sh->vocab_hint());
  }
  recorded_vocab_ = first ? first->vocab_hint() : 0;
  validate_tokens();
}

void ShardSet::validate_tokens() const {
  const uint32_t limit = static_cast<uint32_t>(vocab_size_);
  // Chunks large enough that OpenMP overhead vanishes, small enough to balance a few shards.
  constexpr int64_t kChunk = 1 << 20;
  for (const auto& s : shards_) {
    if (s->width() == 2 && vocab_size_ > 65535) continue;  // uint16 ids are all < vocab
    const int64_t n = s->size();
    const int64_t nchunks = (n + kChunk - 1) / kChunk;
    int64_t first = INT64_MAX;  // lowest offending index, so the error is deterministic
#pragma omp parallel for schedule(dynamic, 1) reduction(min : first)
    for (int64_t c = 0; c < nchunks; c++) {
      int64_t i = s->find_at_least(c * kChunk, std::min(n, (c + 1) * kChunk), limit);
      if (i >= 0 && i < first) first = i;
    }
    if (first != INT64_MAX)
      MU_FAIL("%s: token %u at offset %lld is >= the model's vocabulary (%d)", s->path().c_str(), s->at(first),
              (long long)first, vocab_size_);
  }
}

void ShardSet::read(int64_t pos, int64_t n, int32_t* out) const {
  const int64_t total = total_tokens();
  MU_CHECK(pos >= 0 && n >= 0 && pos <= total && n <= total - pos,
           "shards '%s': reading %lld tokens at position %lld runs past the end (%lld tokens)", pattern_.c_str(),
           (long long)n, (long long)pos, (long long)total);
  // The last shard whose start is <= pos (skips empty shards, whose starts repeat).
  size_t k = std::upper_bound(starts_.begin(), starts_.end(), pos) - starts_.begin() - 1;
  while (n > 0) {
    const Shard& s = *shards_[k];
    int64_t local = pos - starts_[k];
    int64_t m = std::min(n, s.size() - local);
    s.copy_to(local, m, out);
    out += m;
    pos += m;
    n -= m;
    k++;
  }
}

}  // namespace mu
