// The pre-tokenizer splits of Hugging Face tokenizers, written out by hand instead of run
// through a regex engine (no \p{L} support is needed from a library):
//   gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//           (GPT-2; the ByteLevel pre-tokenizer's use_regex; SmolLM2)
//   cl100k  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//           (Llama 3's Split pre-tokenizer; max_digits 1 gives the \p{N} variant of Qwen2)
// Each function appends pieces that cover `s` exactly, in order (regex "Isolated" behaviour:
// these patterns match every character, so nothing falls between matches).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mu::tok {

void split_gpt2(std::string_view s, std::vector<std::string_view>* out);
void split_cl100k(std::string_view s, int max_digits, std::vector<std::string_view>* out);
// HF Digits pre-tokenizer: numbers (\p{N}) split from the rest, one piece per digit when
// `individual`, else one piece per run.
void split_digits(std::string_view s, bool individual, std::vector<std::string_view>* out);

// The pattern strings of tokenizer.json Split pre-tokenizers we implement, and which split
// each one means: "gpt2", "cl100k" (max_digits 3) or "cl100k1" (max_digits 1); "" if unknown.
std::string known_split_pattern(const std::string& regex);

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100.. in order, so every byte is a visible character in vocab strings.
const std::array<std::string, 256>& byte_to_unicode();  // UTF-8 of each byte's character
int unicode_to_byte(uint32_t cp);                       // -1 if cp is no byte's character

}  // namespace mu::tok
