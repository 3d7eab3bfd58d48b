#include "tools/tokenizer/unicode.h"

#include <algorithm>
#include <vector>

namespace mu::tok {

extern const uint32_t kLetterRanges[][2];
extern const size_t kLetterRangesCount;
extern const uint32_t kNumberRanges[][2];
extern const size_t kNumberRangesCount;
extern const uint32_t kMarkRanges[][2];
extern const size_t kMarkRangesCount;
extern const uint32_t kDecimalRanges[][2];
extern const size_t kDecimalRangesCount;
extern const uint32_t kLetterNumberRanges[][2];
extern const size_t kLetterNumberRangesCount;
extern const uint32_t kConnectorRanges[][2];
extern const size_t kConnectorRangesCount;

namespace {

bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
  // First range whose end is >= cp; cp is inside when that range starts at or before it.
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (r[mid][1] < cp) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && r[lo][0] <= cp;
}

// Unicode White_Space, which is what \s matches in the Unicode-aware regex engines
// (Oniguruma in HF tokenizers, the regex crate, Python's re for str).
bool white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

CharClass classify(uint32_t cp) {
  if (white_space(cp)) return CharClass::Space;
  if (in_ranges(kLetterRanges, kLetterRangesCount, cp)) return CharClass::Letter;
  if (in_ranges(kNumberRanges, kNumberRangesCount, cp)) return CharClass::Number;
  return CharClass::Other;
}

// The Basic Multilingual Plane as a 64 KB table: nearly all text stays in it.
const std::vector<CharClass>& bmp_table() {
  static const std::vector<CharClass> t = [] {
    std::vector<CharClass> v(0x10000);
    for (uint32_t cp = 0; cp < 0x10000; cp++) v[cp] = classify(cp);
    return v;
  }();
  return t;
}

}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp < 0x10000) return bmp_table()[cp];
  if (cp == kInvalid) return CharClass::Other;
  return classify(cp);
}

bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return cp == '_' || (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  if (cp == kInvalid) return false;
  return is_letter(cp) || cp == 0x200C || cp == 0x200D || in_ranges(kMarkRanges, kMarkRangesCount, cp) ||
         in_ranges(kDecimalRanges, kDecimalRangesCount, cp) ||
         in_ranges(kLetterNumberRanges, kLetterNumberRangesCount, cp) ||
         in_ranges(kConnectorRanges, kConnectorRangesCount, cp);
}

uint32_t utf8_decode(const char* s, size_t n, size_t* len) {
  const unsigned char* u = reinterpret_cast<const unsigned char*>(s);
  const unsigned char c = u[0];
  *len = 1;
  if (c < 0x80) return c;
  size_t need;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) need = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) need = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) need = 4, cp = c & 0x07, min = 0x10000;
  else return kInvalid;
  if (n < need) return kInvalid;
  for (size_t i = 1; i < need; i++) {
    if ((u[i] & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (u[i] & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  *len = need;
  return cp;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace mu::tok
