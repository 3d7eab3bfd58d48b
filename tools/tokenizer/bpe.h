// The BPE model of Hugging Face tokenizers (model.type "BPE"): a piece becomes initial
// symbols (its bytes through the GPT-2 byte map, or its characters with <0xXX> byte fallback),
// then the pair with the lowest merge rank is merged, leftmost first, until none is left.
// Same order as tokenizers' Word::merge_all (a heap of (rank, position)), so long pieces cost
// O(n log n), not O(n^2).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mu::tok {

struct BpeOptions {
  bool byte_level = false;     // initial symbols are bytes (GPT-2 byte-to-unicode characters)
  bool byte_fallback = false;  // characters not in the vocab become <0xXX> tokens
  bool ignore_merges = false;  // a piece that is a vocab token is emitted whole (Llama 3)
  bool fuse_unk = false;       // consecutive unknown characters give one unk token
  int unk_id = -1;             // -1: no unk token; unknown characters are dropped (counted)
};

class Bpe {
 public:
  // vocab: token -> id; merges in rank order as (left, right) token strings. Errors name
  // the offending merge (its index in `merges`).
  void init(const std::unordered_map<std::string, uint32_t>& vocab,
            const std::vector<std::pair<std::string, std::string>>& merges, const BpeOptions& o);

  // Appends the ids of one pre-tokenized piece (raw UTF-8 bytes; for byte_level the bytes are
  // mapped here, not by the caller).
  void encode(std::string_view piece, std::vector<uint32_t>* out);

  int64_t dropped() const { return dropped_; }  // characters with no token and no unk

 private:
  void initial_symbols(std::string_view piece, std::vector<uint32_t>* syms);
  void merge(std::vector<uint32_t>* syms) const;
  struct Merge {
    uint32_t rank, id;
  };
  BpeOptions o_;
  const std::unordered_map<std::string, uint32_t>* vocab_ = nullptr;
  std::unordered_map<uint64_t, Merge> merges_;     // (left << 32 | right) -> rank, merged id
  std::unordered_map<uint32_t, uint32_t> char_id_;  // code point -> id of the 1-character token
  int byte_id_[256];                                // byte-level symbol or <0xXX> fallback id, -1 absent
  bool all_fallback_ = false;                       // every <0xXX> exists (HF falls back only then)
  std::unordered_map<std::string, std::vector<uint32_t>> cache_;
  int64_t dropped_ = 0;
};

}  // namespace mu::tok
