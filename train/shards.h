// Token shards: the llm.c file format, read through mmap.
//
// A shard is a 1024-byte header of 256 little-endian int32 followed by the tokens:
//   header[0] magic   20240520 -> uint16 tokens (version 1; llm.c / modded-nanogpt FineWeb
//                     shards load as they are), 20240801 -> uint32 tokens (version 7),
//   header[1] version,
//   header[2] token count (so one shard holds at most 2^31-1 tokens),
//   header[3] vocabulary size when the writer knew it, else 0 (our extension; llm.c
//             writes zeros there and ignores the field, so our files stay llm.c-readable),
//   header[4..255] zero.
// The file size must be exactly 1024 + count * width: anything else is a truncated or
// foreign file and is refused.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mu {

constexpr int32_t kShardMagicU16 = 20240520;
constexpr int32_t kShardVersionU16 = 1;
constexpr int32_t kShardMagicU32 = 20240801;
constexpr int32_t kShardVersionU32 = 7;
constexpr int64_t kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;

// Token width in bytes for a vocabulary: 2 when every id fits uint16 (vocab <= 65536), else 4.
int shard_token_width(int vocab_size);

// Streams one shard whose token count is known up front, for outputs too large to build in
// memory first. Nothing appears under `path` until commit() (temp file + fsync + rename).
// vocab_size > 0: stored in header[3] and every token is checked < vocab_size;
// vocab_size == 0: unknown (header[3] = 0), tokens are only checked to fit `width`.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, int64_t count, int width, int vocab_size);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  void write(const uint32_t* tokens, int64_t n);
  void commit();  // error unless exactly `count` tokens were written

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes a whole shard atomically. Width: uint16 when vocab_size <= 65536, else uint32;
// vocab_size == 0 (unknown) picks the width from the largest token.
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, int vocab_size);

// One shard, memory-mapped read-only. The constructor validates magic, version and size.
class Shard {
 public:
  explicit Shard(const std::string& path);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  int64_t size() const { return count_; }  // tokens
  int width() const { return width_; }     // bytes per token: 2 or 4
  uint32_t at(int64_t i) const;            // bounds-checked
  const std::string& path() const { return path_; }
  int vocab_hint() const { return vocab_hint_; }  // header[3]; 0 = not recorded
  // Copies tokens [begin, begin + n) as int32 (no bounds check: ShardSet checks).
  void copy_to(int64_t begin, int64_t n, int32_t* out) const;
  // The first index in [begin, end) whose token is >= limit, or -1.
  int64_t find_at_least(int64_t begin, int64_t end, uint32_t limit) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
  int64_t count_ = 0;
  int width_ = 0;
  int vocab_hint_ = 0;
};

// The shards matching a glob(3) pattern (a plain path works too), in byte-wise sorted path
// order, seen as one stream of tokens. Every token is checked < vocab_size once, at load.
class ShardSet {
 public:
  ShardSet(const std::string& pattern, int vocab_size);

  int64_t total_tokens() const { return starts_.back(); }
  const std::vector<std::unique_ptr<Shard>>& shards() const { return shards_; }
  const std::string& pattern() const { return pattern_; }  // as given: named in errors
  int vocab_size() const { return vocab_size_; }
  // The vocabulary the shards record (header[3]; every shard that records one agrees), 0 if none.
  int recorded_vocab() const { return recorded_vocab_; }
  // Copies n tokens starting at global position pos (crossing shard boundaries) as int32.
  void read(int64_t pos, int64_t n, int32_t* out) const;

 private:
  void validate_tokens() const;
  std::string pattern_;
  int vocab_size_ = 0, recorded_vocab_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<int64_t> starts_;  // (S+1,) global index of each shard's first token; back() = total
};

}  // namespace mu
