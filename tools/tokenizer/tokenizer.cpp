// The encode pipeline of tokenizers (tokenizer/mod.rs encode_single_sequence): added tokens
// out of the raw text, then normalizer -> pre-tokenizers -> BPE for each other segment.
#include "tools/tokenizer/tokenizer.h"

#include <cctype>

#include "core/error.h"
#include "tools/tokenizer/pretokenize.h"
#include "tools/tokenizer/tokenizer_impl.h"
#include "tools/tokenizer/unicode.h"

namespace mu {

using namespace tok;

namespace {

struct Piece {
  std::string text;
  bool at_start;  // begins at offset 0 of the encoded text (Metaspace prepend_scheme "first")
};

// The code point that ends just before byte `end` (UTF-8 walked backwards).
uint32_t char_before(std::string_view s, size_t end, size_t* start) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) b--;
  size_t len;
  uint32_t cp = utf8_decode(s.data() + b, end - b, &len);
  if (b + len != end) b = end - 1, cp = kInvalid;  // not a whole character: one byte
  *start = b;
  return cp;
}

void replace_all(std::string* s, const std::string& from, const std::string& to) {
  if (s->find(from) == std::string::npos) return;
  std::string out;
  size_t i = 0;
  for (size_t p; (p = s->find(from, i)) != std::string::npos; i = p + from.size()) out.append(*s, i, p - i).append(to);
  out.append(*s, i, std::string::npos);
  *s = std::move(out);
}

void split_views(std::vector<Piece>* pieces, size_t k, const std::vector<std::string_view>& views,
                 std::vector<Piece>* out) {
  const Piece& p = (*pieces)[k];
  for (size_t i = 0; i < views.size(); i++) out->push_back({std::string(views[i]), p.at_start && i == 0});
}

// Cuts `s` before every occurrence of `sep` (tokenizers' MergedWithNext split): "▁a▁▁b" ->
// "▁a", "▁", "▁b". With `only_after_other`, only before a sep that follows a non-sep
// character ("▁a▁▁b" -> "▁a", "▁▁b").
void cut_before(std::string_view s, const std::string& sep, bool only_after_other, std::vector<std::string_view>* out) {
  size_t begin = 0;
  for (size_t p = s.find(sep, 1); p != std::string::npos; p = s.find(sep, p + sep.size())) {
    if (only_after_other && p >= sep.size() && s.compare(p - sep.size(), sep.size(), sep) == 0) continue;
    if (p > begin) out->push_back(s.substr(begin, p - begin));
    begin = p;
  }
  if (begin < s.size()) out->push_back(s.substr(begin));
}

}  // namespace

void Tokenizer::Impl::encode(std::string_view text, std::vector<uint32_t>* out) {
  std::vector<Piece> pieces, next;
  std::vector<std::string_view> views;
  auto encode_segment = [&](std::string_view seg, bool at_start) {
    if (seg.empty()) return;
    std::string t(seg);
    for (const NormOp& n : norm) {
      if (n.kind == NormOp::Prepend) {
        if (!t.empty()) t.insert(0, n.a);
      } else {
        replace_all(&t, n.a, n.b);
      }
    }
    pieces.clear();
    pieces.push_back({std::move(t), at_start});
    for (const PreOp& op : pre) {
      next.clear();
      for (size_t k = 0; k < pieces.size(); k++) {
        Piece& p = pieces[k];
        views.clear();
        switch (op.kind) {
          case PreOp::ByteLevel:
            if (op.add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
            if (op.use_regex) split_gpt2(p.text, &views);
            else views.push_back(p.text);
            break;
          case PreOp::Split:
            if (op.pattern == "gpt2") split_gpt2(p.text, &views);
            else split_cl100k(p.text, op.pattern == "cl100k" ? 3 : 1, &views);
            break;
          case PreOp::Digits:
            split_digits(p.text, op.individual, &views);
            break;
          case PreOp::Metaspace: {
            replace_all(&p.text, " ", op.replacement);
            const bool starts = p.text.compare(0, op.replacement.size(), op.replacement) == 0;
            if (!starts && (op.prepend == PreOp::Always || (op.prepend == PreOp::First && p.at_start)))
              p.text.insert(0, op.replacement);
            if (op.split) cut_before(p.text, op.replacement, false, &views);
            else views.push_back(p.text);
            break;
          }
        }
        split_views(&pieces, k, views, &next);
      }
      pieces.swap(next);
    }
    for (const Piece& p : pieces) {
      if (!cut_at_meta) {
        bpe.encode(p.text, out);
        continue;
      }
      views.clear();
      cut_before(p.text, meta, true, &views);
      for (std::string_view v : views) bpe.encode(v, out);
    }
  };

  // Added tokens: leftmost match, longest first at that position.
  size_t seg_begin = 0, pos = 0;
  while (pos < text.size()) {
    const std::vector<int>& cands = added_by_byte[static_cast<unsigned char>(text[pos])];
    const AddedToken* hit = nullptr;
    for (int idx : cands) {
      const AddedToken& a = added[idx];
      if (text.compare(pos, a.content.size(), a.content) != 0) continue;
      if (a.single_word) {
        size_t s, len;
        if (pos > 0 && is_word_char(char_before(text, pos, &s))) continue;
        const size_t end = pos + a.content.size();
        if (end < text.size() && is_word_char(utf8_decode(text.data() + end, text.size() - end, &len))) continue;
      }
      hit = &a;
      break;
    }
    if (!hit) {
      pos++;
      continue;
    }
    size_t start = pos, end = pos + hit->content.size();
    if (hit->lstrip) {  // the whitespace before the token belongs to it
      size_t s;
      while (start > seg_begin && is_space(char_before(text, start, &s))) start = s;
    }
    if (hit->rstrip) {
      size_t len;
      while (end < text.size() && is_space(utf8_decode(text.data() + end, text.size() - end, &len))) end += len;
    }
    encode_segment(text.substr(seg_begin, start - seg_begin), seg_begin == 0);
    out->push_back(hit->id);
    seg_begin = pos = end;
  }
  encode_segment(text.substr(seg_begin), seg_begin == 0);
}

// ---- the public face ---------------------------------------------------------------------------

Tokenizer::Tokenizer(const std::string& path) : impl_(std::make_unique<Impl>()) { impl_->load(path); }
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

void Tokenizer::encode(std::string_view text, std::vector<uint32_t>* out) { impl_->encode(text, out); }

std::vector<uint32_t> Tokenizer::encode(std::string_view text) {
  std::vector<uint32_t> out;
  impl_->encode(text, &out);
  return out;
}

void Tokenizer::encode_document(std::string_view text, std::vector<uint32_t>* out) {
  if (impl_->add_bos) out->push_back(static_cast<uint32_t>(impl_->bos));
  impl_->encode(text, out);
  if (impl_->add_eos) out->push_back(static_cast<uint32_t>(impl_->eos));
}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  const Impl& m = *impl_;
  std::string out;
  bool first_is_text = false;
  for (size_t i = 0; i < ids.size(); i++) {
    MU_CHECK(ids[i] < m.id_to_token.size(), "decode: id %u is outside the vocabulary (%zu)", ids[i],
             m.id_to_token.size());
    const std::string& t = m.id_to_token[ids[i]];
    const bool added = m.is_added[ids[i]] != 0;
    if (i == 0) first_is_text = !added;
    if (added) {
      out += t;
    } else if (m.bpe_opts.byte_level) {
      for (size_t k = 0; k < t.size();) {
        size_t len;
        const uint32_t cp = utf8_decode(t.data() + k, t.size() - k, &len);
        const int b = cp == kInvalid ? -1 : unicode_to_byte(cp);
        if (b >= 0) out += static_cast<char>(b);
        else out.append(t, k, len);
        k += len;
      }
    } else if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
               std::isxdigit(static_cast<unsigned char>(t[4]))) {
      out += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
    } else {
      std::string w = t;
      if (!m.meta.empty()) replace_all(&w, m.meta, " ");
      out += w;
    }
  }
  // The space the normalizer / Metaspace put before the first word is not part of the text.
  if (!m.bpe_opts.byte_level && m.meta_prepended && first_is_text && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

int Tokenizer::vocab_size() const { return static_cast<int>(impl_->id_to_token.size()); }
int Tokenizer::bos_id() const { return impl_->bos; }
int Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
int64_t Tokenizer::dropped_chars() const { return impl_->bpe.dropped(); }

void Tokenizer::set_add_bos(bool on) {
  MU_CHECK(!on || impl_->bos >= 0, "%s: the tokenizer has no BOS token (bos_token in tokenizer_config.json)",
           impl_->file.c_str());
  impl_->add_bos = on;
}

void Tokenizer::set_add_eos(bool on) {
  MU_CHECK(!on || impl_->eos >= 0, "%s: the tokenizer has no EOS token (eos_token in tokenizer_config.json)",
           impl_->file.c_str());
  impl_->add_eos = on;
}

int Tokenizer::token_id(const std::string& token) const {
  for (const AddedToken& a : impl_->added)
    if (a.content == token) return static_cast<int>(a.id);
  auto it = impl_->vocab.find(token);
  return it == impl_->vocab.end() ? -1 : static_cast<int>(it->second);
}

std::string Tokenizer::token(uint32_t id) const { return id < impl_->id_to_token.size() ? impl_->id_to_token[id] : ""; }

std::string Tokenizer::summary() const {
  const Impl& m = *impl_;
  std::string pre;
  for (const PreOp& p : m.pre) {
    static const char* names[] = {"ByteLevel", "Split", "Digits", "Metaspace"};
    pre += (pre.empty() ? "" : " > ") + std::string(names[p.kind]);
    if (p.kind == PreOp::Split) pre += "(" + p.pattern + ")";
  }
  auto mark = [&](int id, bool on) {
    return id < 0 ? std::string("none") : strformat("%s=%d%s", m.id_to_token[id].c_str(), id, on ? " added" : "");
  };
  return strformat("%s BPE, vocab %d, %zu merges, %zu added tokens, pre-tokenizers [%s], BOS %s, EOS %s (%s)",
                   m.bpe_opts.byte_level ? "byte-level" : (m.bpe_opts.byte_fallback ? "byte-fallback" : "char-level"),
                   vocab_size(), m.n_merges, m.added.size(), pre.empty() ? "none" : pre.c_str(),
                   mark(m.bos, m.add_bos).c_str(), mark(m.eos, m.add_eos).c_str(), m.marks_source.c_str());
}

}  // namespace mu
