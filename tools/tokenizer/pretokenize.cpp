#include "tools/tokenizer/pretokenize.h"

#include <cctype>

#include "tools/tokenizer/unicode.h"

namespace mu::tok {

namespace {

// The piece decoded once: code points, classes and byte offsets (off has n+1 entries).
struct Chars {
  std::vector<uint32_t> cp;
  std::vector<CharClass> cls;
  std::vector<size_t> off;
  size_t n = 0;

  void load(std::string_view s) {
    cp.clear(), cls.clear(), off.clear();
    size_t i = 0;
    while (i < s.size()) {
      size_t len;
      uint32_t c = utf8_decode(s.data() + i, s.size() - i, &len);
      cp.push_back(c);
      cls.push_back(char_class(c));
      off.push_back(i);
      i += len;
    }
    off.push_back(s.size());
    n = cp.size();
  }
  bool L(size_t i) const { return i < n && cls[i] == CharClass::Letter; }
  bool N(size_t i) const { return i < n && cls[i] == CharClass::Number; }
  bool S(size_t i) const { return i < n && cls[i] == CharClass::Space; }
  bool O(size_t i) const { return i < n && cls[i] == CharClass::Other; }  // [^\s\p{L}\p{N}]
  bool is(size_t i, uint32_t c) const { return i < n && cp[i] == c; }
  bool newline(size_t i) const { return is(i, '\r') || is(i, '\n'); }
};

thread_local Chars t_chars;

// 's|'t|'re|'ve|'m|'ll|'d at i: the match length in characters, or 0.
size_t contraction(const Chars& c, size_t i, bool ignore_case) {
  if (!c.is(i, '\'')) return 0;
  auto at = [&](size_t k, char want) {
    if (k >= c.n || c.cp[k] >= 128) return false;
    char ch = static_cast<char>(c.cp[k]);
    return ignore_case ? std::tolower(static_cast<unsigned char>(ch)) == want : ch == want;
  };
  for (const char* suf : {"s", "t", "re", "ve", "m", "ll", "d"}) {
    size_t k = 0;
    while (suf[k] && at(i + 1 + k, suf[k])) k++;
    if (!suf[k]) return 1 + k;
  }
  return 0;
}

// \s+(?!\S) then \s+ at i (c.S(i) holds): a whitespace run followed by a non-space gives
// all but its last character (which then prefixes the next word), unless it is 1 long.
size_t whitespace_run(const Chars& c, size_t i) {
  size_t j = i;
  while (c.S(j)) j++;
  if (j < c.n && j - i >= 2) return j - 1;
  return j;
}

void emit(std::string_view s, const Chars& c, size_t i, size_t j, std::vector<std::string_view>* out) {
  out->push_back(s.substr(c.off[i], c.off[j] - c.off[i]));
}

}  // namespace

void split_gpt2(std::string_view s, std::vector<std::string_view>* out) {
  Chars& c = t_chars;
  c.load(s);
  size_t i = 0;
  while (i < c.n) {
    size_t j;
    const bool sp = c.is(i, ' ');
    if (size_t k = contraction(c, i, false)) {
      j = i + k;
    } else if (c.L(i) || (sp && c.L(i + 1))) {  //  ?\p{L}+
      j = sp ? i + 1 : i;
      while (c.L(j)) j++;
    } else if (c.N(i) || (sp && c.N(i + 1))) {  //  ?\p{N}+
      j = sp ? i + 1 : i;
      while (c.N(j)) j++;
    } else if (c.O(i) || (sp && c.O(i + 1))) {  //  ?[^\s\p{L}\p{N}]+
      j = sp ? i + 1 : i;
      while (c.O(j)) j++;
    } else {
      j = whitespace_run(c, i);
    }
    emit(s, c, i, j, out);
    i = j;
  }
}

void split_cl100k(std::string_view s, int max_digits, std::vector<std::string_view>* out) {
  Chars& c = t_chars;
  c.load(s);
  size_t i = 0;
  while (i < c.n) {
    size_t j;
    if (size_t k = contraction(c, i, true)) {
      j = i + k;
    } else if (c.L(i) || (!c.N(i) && !c.newline(i) && c.L(i + 1))) {  // [^\r\n\p{L}\p{N}]?\p{L}+
      j = i + 1;
      while (c.L(j)) j++;
    } else if (c.N(i)) {  // \p{N}{1,max}
      j = i;
      while (c.N(j) && j - i < static_cast<size_t>(max_digits)) j++;
    } else if (c.O(i) || (c.is(i, ' ') && c.O(i + 1))) {  //  ?[^\s\p{L}\p{N}]+[\r\n]*
      j = c.O(i) ? i : i + 1;
      while (c.O(j)) j++;
      while (c.newline(j)) j++;
    } else {
      // \s*[\r\n]+ : through the last newline of the whitespace run, if it has one.
      size_t e = i, last_nl = c.n;
      while (c.S(e)) {
        if (c.newline(e)) last_nl = e;
        e++;
      }
      j = last_nl < c.n ? last_nl + 1 : whitespace_run(c, i);
    }
    emit(s, c, i, j, out);
    i = j;
  }
}

void split_digits(std::string_view s, bool individual, std::vector<std::string_view>* out) {
  Chars& c = t_chars;
  c.load(s);
  size_t i = 0;
  while (i < c.n) {
    size_t j = i + 1;
    if (c.N(i)) {
      if (!individual)
        while (c.N(j)) j++;
    } else {
      while (j < c.n && !c.N(j)) j++;
    }
    emit(s, c, i, j, out);
    i = j;
  }
}

std::string known_split_pattern(const std::string& re) {
  static const std::string gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  static const std::string cl100k =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string cl100k1 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (re == gpt2) return "gpt2";
  if (re == cl100k) return "cl100k";
  if (re == cl100k1) return "cl100k1";
  return "";
}

namespace {

struct ByteMap {
  std::array<std::string, 256> fwd;
  std::vector<int> back;  // code point -> byte, for cp < 512
  ByteMap() : back(512, -1) {
    int extra = 0;
    for (int b = 0; b < 256; b++) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(extra++);
      utf8_append(fwd[b], cp);
      back[cp] = b;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return byte_map().fwd; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? byte_map().back[cp] : -1; }

}  // namespace mu::tok
