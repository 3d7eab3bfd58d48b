// A Hugging Face tokenizer.json (model.type "BPE") in C++, for mu-data:
//   byte-level BPE   GPT-2, Llama 3, SmolLM2: ByteLevel pre-tokenizer (after a Split with the
//                    GPT-2 or Llama 3 pattern, or Digits), merges by rank, ignore_merges
//   sentencepiece    Llama 2, TinyLlama: characters with <0xXX> byte fallback and the ▁
//   style BPE        meta-space, from a Prepend/Replace normalizer or a Metaspace pre-tokenizer
// The encode pipeline is tokenizers': added tokens split out of the raw text (leftmost-
// longest, lstrip/rstrip/single_word), then per remaining segment normalizer ->
// pre-tokenizers -> BPE. BOS/EOS come from tokenizer_config.json (add_bos_token,
// add_eos_token, bos_token, eos_token) or else the post_processor's template.
// Anything else in the file that would change the ids (other model types, normalizers,
// pre-tokenizers, regexes) is an error naming the field: a silent mismatch with transformers
// would poison a data set.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mu {

class Tokenizer {
 public:
  // `path`: a tokenizer.json file, or a HF model directory holding one. tokenizer_config.json
  // next to it is read when present. Errors name the file and the field.
  explicit Tokenizer(const std::string& path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Appends the ids of `text` (UTF-8; invalid bytes are kept as bytes), no BOS/EOS. Added
  // tokens written in the text ("<|endoftext|>") become their ids, as in transformers.
  // Not thread-safe (a word cache is updated).
  void encode(std::string_view text, std::vector<uint32_t>* out);
  std::vector<uint32_t> encode(std::string_view text);
  // One document: BOS, the text, EOS, each mark as configured (add_bos / add_eos).
  void encode_document(std::string_view text, std::vector<uint32_t>* out);
  // Ids back to text (byte-level: exact; sentencepiece style: ▁ -> space, byte tokens ->
  // bytes, the prepended space removed). Added tokens decode to their content.
  std::string decode(const std::vector<uint32_t>& ids) const;

  int vocab_size() const;  // highest id + 1 over model.vocab and added_tokens
  int bos_id() const;      // -1 when the tokenizer has none
  int eos_id() const;
  bool add_bos() const;  // does encode_document put BOS first?
  bool add_eos() const;
  void set_add_bos(bool on);  // error when turning on a mark the tokenizer lacks
  void set_add_eos(bool on);
  int token_id(const std::string& token) const;  // -1 if neither in the vocab nor added
  std::string token(uint32_t id) const;           // "" for an unused id
  std::string summary() const;                    // one line: kind, vocab, pre-tokenizers, BOS/EOS
  int64_t dropped_chars() const;                  // characters with no token and no unk (dropped)

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mu
