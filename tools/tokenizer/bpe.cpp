#include "tools/tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tools/tokenizer/pretokenize.h"
#include "tools/tokenizer/unicode.h"

namespace mu::tok {

namespace {

uint64_t pair_key(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }

// Pieces up to this many bytes are cached: words repeat, long runs rarely do.
constexpr size_t kCacheMaxPiece = 48;
constexpr size_t kCacheMaxEntries = 1 << 20;

}  // namespace

void Bpe::init(const std::unordered_map<std::string, uint32_t>& vocab,
               const std::vector<std::pair<std::string, std::string>>& merges, const BpeOptions& o) {
  o_ = o;
  vocab_ = &vocab;
  merges_.clear();
  merges_.reserve(merges.size() * 2);
  auto id_of = [&](const std::string& t, size_t rank, const char* side) {
    auto it = vocab.find(t);
    MU_CHECK(it != vocab.end(), "field \"model.merges\"[%zu]: %s token '%s' is not in model.vocab", rank, side,
             t.c_str());
    return it->second;
  };
  for (size_t r = 0; r < merges.size(); r++) {
    const auto& [a, b] = merges[r];
    const uint32_t ia = id_of(a, r, "left"), ib = id_of(b, r, "right"), im = id_of(a + b, r, "merged");
    // A repeated pair keeps its first (lowest) rank, as a map insert in rank order does.
    merges_.emplace(pair_key(ia, ib), Merge{static_cast<uint32_t>(r), im});
  }
  char_id_.clear();
  for (const auto& [tok, id] : vocab) {
    size_t len;
    uint32_t cp = utf8_decode(tok.data(), tok.size(), &len);
    if (len == tok.size() && cp != kInvalid) char_id_[cp] = id;
  }
  all_fallback_ = true;
  for (int b = 0; b < 256; b++) {
    std::string key;
    if (o.byte_level) {
      key = byte_to_unicode()[b];
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      key = buf;
    }
    auto it = vocab.find(key);
    byte_id_[b] = it == vocab.end() ? -1 : static_cast<int>(it->second);
    all_fallback_ = all_fallback_ && byte_id_[b] >= 0;
  }
  cache_.clear();
  dropped_ = 0;
}

// HF BPE::merge_word: one symbol per byte (byte-level) or per character, with byte fallback
// and unk handling for characters the vocab lacks.
void Bpe::initial_symbols(std::string_view s, std::vector<uint32_t>* syms) {
  syms->clear();
  bool pending_unk = false;
  auto flush_unk = [&] {
    if (pending_unk) syms->push_back(static_cast<uint32_t>(o_.unk_id));
    pending_unk = false;
  };
  auto unknown = [&] {
    if (o_.unk_id < 0) {
      dropped_++;
      return;
    }
    if (!o_.fuse_unk) flush_unk();
    pending_unk = true;
  };
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    if (o_.byte_level) {
      const int id = byte_id_[static_cast<unsigned char>(s[i])];
      if (id >= 0) {
        flush_unk();
        syms->push_back(static_cast<uint32_t>(id));
      } else {
        unknown();
      }
      i++;
      continue;
    }
    const uint32_t cp = utf8_decode(s.data() + i, s.size() - i, &len);
    auto it = cp == kInvalid ? char_id_.end() : char_id_.find(cp);
    if (it != char_id_.end()) {
      flush_unk();
      syms->push_back(it->second);
    } else if (o_.byte_fallback && all_fallback_) {
      // tokenizers adds the byte tokens without flushing a pending unk; with every <0xXX>
      // present nothing is ever unknown, so the order question cannot arise.
      for (size_t k = 0; k < len; k++) syms->push_back(static_cast<uint32_t>(byte_id_[static_cast<unsigned char>(s[i + k])]));
    } else {
      unknown();
    }
    i += len;
  }
  flush_unk();
}

void Bpe::merge(std::vector<uint32_t>* syms) const {
  const int n = static_cast<int>(syms->size());
  if (n < 2) return;
  struct Sym {
    uint32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Sym> s(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) s[i] = {(*syms)[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  struct Cand {
    uint32_t rank;
    int pos;
    uint32_t id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int pos) {
    const int nx = s[pos].next;
    if (nx < 0) return;
    auto it = merges_.find(pair_key(s[pos].id, s[nx].id));
    if (it != merges_.end()) heap.push({it->second.rank, pos, it->second.id});
  };
  for (int i = 0; i + 1 < n; i++) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& left = s[c.pos];
    if (!left.alive || left.next < 0) continue;
    // Stale entry: the pair at this position changed since it was queued.
    auto it = merges_.find(pair_key(left.id, s[left.next].id));
    if (it == merges_.end() || it->second.id != c.id) continue;
    Sym& right = s[left.next];
    left.id = c.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) s[right.next].prev = c.pos;
    if (left.prev >= 0) push(left.prev);
    push(c.pos);
  }
  syms->clear();
  for (int i = 0; i >= 0; i = s[i].next) syms->push_back(s[i].id);
}

void Bpe::encode(std::string_view piece, std::vector<uint32_t>* out) {
  if (piece.empty()) return;
  if (o_.ignore_merges) {
    std::string key;
    if (o_.byte_level) {
      for (char ch : piece) key += byte_to_unicode()[static_cast<unsigned char>(ch)];
    } else {
      key.assign(piece);
    }
    auto it = vocab_->find(key);
    if (it != vocab_->end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = piece.size() <= kCacheMaxPiece;
  if (cacheable) {
    auto it = cache_.find(std::string(piece));
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<uint32_t> syms;
  const int64_t dropped_before = dropped_;
  initial_symbols(piece, &syms);
  merge(&syms);
  out->insert(out->end(), syms.begin(), syms.end());
  // A piece with dropped characters is not cached, so every drop is counted.
  if (cacheable && dropped_ == dropped_before) {
    if (cache_.size() >= kCacheMaxEntries) cache_.clear();
    cache_.emplace(std::string(piece), syms);
  }
}

}  // namespace mu::tok
