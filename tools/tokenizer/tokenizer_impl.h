// The parsed form of a tokenizer.json, shared by tokenizer_load.cpp (JSON -> Impl) and
// tokenizer.cpp (the encode/decode pipeline). Not part of the public API.
#pragma once
#include <array>
#include <string>
#include <unordered_map>
#include <vector>

#include "tools/tokenizer/bpe.h"
#include "tools/tokenizer/tokenizer.h"

namespace mu {

namespace tok {

struct AddedToken {
  std::string content;
  uint32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false;
};

// Normalizers we implement (tokenizer.json "normalizer"); applied in order to each segment.
struct NormOp {
  enum Kind { Prepend, Replace } kind;
  std::string a, b;  // Prepend: a = text; Replace: a -> b (a String pattern)
};

// Pre-tokenizers we implement, applied in order to every piece.
struct PreOp {
  enum Kind { ByteLevel, Split, Digits, Metaspace } kind;
  bool add_prefix_space = false;  // ByteLevel
  bool use_regex = true;          // ByteLevel: split with the GPT-2 pattern first
  std::string pattern;            // Split: "gpt2", "cl100k" or "cl100k1" (pretokenize.h)
  bool individual = false;        // Digits
  std::string replacement;        // Metaspace (UTF-8 of one character, usually ▁)
  enum Prepend { Never, First, Always } prepend = Always;  // Metaspace prepend_scheme
  bool split = true;              // Metaspace: one piece per word
};

}  // namespace tok

struct Tokenizer::Impl {
  std::string file;  // the tokenizer.json path, for messages
  std::unordered_map<std::string, uint32_t> vocab;
  std::vector<std::string> id_to_token;  // vocab and added tokens; "" for unused ids
  std::vector<tok::AddedToken> added;
  std::vector<char> is_added;  // per id
  std::array<std::vector<int>, 256> added_by_byte;  // first byte -> added indices, longest first
  std::vector<tok::NormOp> norm;
  std::vector<tok::PreOp> pre;
  tok::BpeOptions bpe_opts;
  tok::Bpe bpe;
  size_t n_merges = 0;
  std::string meta;            // sentencepiece meta-space ("▁") or "" (byte-level)
  bool meta_prepended = false; // a normalizer or Metaspace puts meta before the first word
  bool cut_at_meta = false;    // pieces may be cut before a word-initial meta (see tokenizer.cpp)
  int bos = -1, eos = -1;
  bool add_bos = false, add_eos = false;
  std::string marks_source;  // where add_bos/add_eos came from, for summary()

  void load(const std::string& path);  // tokenizer_load.cpp
  void encode(std::string_view text, std::vector<uint32_t>* out);
};

}  // namespace mu
