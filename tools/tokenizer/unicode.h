// UTF-8 and the three Unicode classes the pre-tokenizer patterns use: \p{L} (letters),
// \p{N} (numbers) and \s (White_Space). Tables: unicode_tables.cpp (generated).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mu::tok {

enum class CharClass : uint8_t { Other, Letter, Number, Space };

CharClass char_class(uint32_t cp);
inline bool is_letter(uint32_t cp) { return char_class(cp) == CharClass::Letter; }
inline bool is_number(uint32_t cp) { return char_class(cp) == CharClass::Number; }
inline bool is_space(uint32_t cp) { return char_class(cp) == CharClass::Space; }
// The regex \w (letters, marks, decimal digits, letter numbers, connector punctuation, joiners),
// which tokenizers uses for an added token's single_word boundaries. (Other_Alphabetic symbols
// such as the circled letters are left out.)
bool is_word_char(uint32_t cp);

// Code point beginning at s[0] (n > 0 bytes available); *len gets its byte length. Invalid
// or truncated UTF-8 decodes as one byte with code point kInvalid, so every input byte is
// consumed exactly once and text that is not UTF-8 still tokenizes (bytes are kept).
constexpr uint32_t kInvalid = 0xFFFFFFFFu;
uint32_t utf8_decode(const char* s, size_t n, size_t* len);
void utf8_append(std::string& out, uint32_t cp);
// The length of the character starting at s[0] (1 for invalid bytes).
inline size_t utf8_len(const char* s, size_t n) {
  size_t len;
  utf8_decode(s, n, &len);
  return len;
}

}  // namespace mu::tok
