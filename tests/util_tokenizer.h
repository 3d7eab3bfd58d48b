// Small tokenizer.json files for the tokenizer and mu-data tests.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace mu::test {

extern const std::string kMeta;  // "▁" U+2581, the sentencepiece meta-space

// Sentencepiece-style test tokenizer: <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF> = 3..258, then
//   259 "▁"  260 "a"  261 "b"  262 "▁a" (r0: ▁ a)  263 "ab" (r1: a b)  264 "▁ab" (r2: ▁a b)  265 "é"
// with the Llama 2 normalizers (Prepend ▁, Replace " " -> ▁), or with `metaspace` a
// Metaspace pre-tokenizer (prepend_scheme "first", split false) as in TinyLlama.
nlohmann::json sp_tokenizer(bool byte_fallback, const nlohmann::json& unk, bool fuse_unk, bool metaspace);

// tokenizer_config.json of Llama 2: BOS <s> added, EOS </s> not.
nlohmann::json llama_tokenizer_config();

}  // namespace mu::test
