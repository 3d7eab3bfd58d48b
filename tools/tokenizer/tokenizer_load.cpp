// tokenizer.json (+ tokenizer_config.json) -> Tokenizer::Impl, refusing every setting that
// the pipeline does not implement, with the field's path in the message.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fileio.h"
#include "tools/tokenizer/pretokenize.h"
#include "tools/tokenizer/tokenizer_impl.h"

namespace mu {

using nlohmann::json;
using namespace tok;
namespace fs = std::filesystem;

namespace {

// Ids index a table; a corrupt id must not make us allocate gigabytes. Ids are range-checked as
// the 64-bit numbers JSON holds: get<uint32_t>() would wrap 2^32 + 100 to 100.
constexpr uint64_t kMaxId = 1u << 24;

json parse_file(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    MU_FAIL("%s: not valid JSON: %s", path.c_str(), e.what());
  }
}

// Typed access with the field's path in every message.
struct Reader {
  const std::string& file;
  [[noreturn]] void fail(const std::string& field, const std::string& msg) const {
    MU_FAIL("%s: field \"%s\" %s", file.c_str(), field.c_str(), msg.c_str());
  }
  const json* get(const json& o, const char* key) const {
    auto it = o.find(key);
    return it == o.end() || it->is_null() ? nullptr : &*it;
  }
  bool boolean(const json& o, const char* key, const std::string& field, bool def) const {
    const json* v = get(o, key);
    if (!v) return def;
    if (!v->is_boolean()) fail(field, "must be true or false, got " + v->dump());
    return v->get<bool>();
  }
  std::string string(const json& o, const char* key, const std::string& field) const {
    const json* v = get(o, key);
    if (!v || !v->is_string()) fail(field, v ? "must be a string, got " + v->dump() : "is missing");
    return v->get<std::string>();
  }
  std::string type(const json& o, const std::string& field) const {
    if (!o.is_object()) fail(field, "must be an object, got " + o.dump().substr(0, 60));
    return string(o, "type", field + ".type");
  }
};

// A special token string in tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

void load_normalizer(const Reader& r, const json& n, const std::string& field, std::vector<NormOp>* out) {
  const std::string t = r.type(n, field);
  if (t == "Sequence") {
    const json* list = r.get(n, "normalizers");
    if (!list || !list->is_array()) r.fail(field + ".normalizers", "must be a list");
    for (size_t i = 0; i < list->size(); i++)
      load_normalizer(r, (*list)[i], field + ".normalizers[" + std::to_string(i) + "]", out);
  } else if (t == "Prepend") {
    out->push_back({NormOp::Prepend, r.string(n, "prepend", field + ".prepend"), ""});
  } else if (t == "Replace") {
    const json* p = r.get(n, "pattern");
    if (!p || !p->is_object() || !p->contains("String") || !(*p)["String"].is_string())
      r.fail(field + ".pattern", "must be {\"String\": ...}; regex Replace normalizers are not supported");
    const std::string from = (*p)["String"].get<std::string>();
    if (from.empty()) r.fail(field + ".pattern.String", "is empty");
    out->push_back({NormOp::Replace, from, r.string(n, "content", field + ".content")});
  } else {
    r.fail(field + ".type", "is \"" + t + "\"; supported normalizers: Sequence, Prepend, Replace (the "
           "normalizers of the Llama 2 / TinyLlama tokenizers)");
  }
}

void load_pre(const Reader& r, const json& p, const std::string& field, std::vector<PreOp>* out) {
  const std::string t = r.type(p, field);
  PreOp op{};
  if (t == "Sequence") {
    const json* list = r.get(p, "pretokenizers");
    if (!list || !list->is_array()) r.fail(field + ".pretokenizers", "must be a list");
    for (size_t i = 0; i < list->size(); i++)
      load_pre(r, (*list)[i], field + ".pretokenizers[" + std::to_string(i) + "]", out);
    return;
  }
  if (t == "ByteLevel") {
    op.kind = PreOp::ByteLevel;
    op.add_prefix_space = r.boolean(p, "add_prefix_space", field + ".add_prefix_space", true);
    op.use_regex = r.boolean(p, "use_regex", field + ".use_regex", true);
  } else if (t == "Split") {
    op.kind = PreOp::Split;
    const json* pat = r.get(p, "pattern");
    if (!pat || !pat->is_object() || !pat->contains("Regex") || !(*pat)["Regex"].is_string())
      r.fail(field + ".pattern", "must be {\"Regex\": ...} with the GPT-2 or Llama 3 pattern");
    const std::string re = (*pat)["Regex"].get<std::string>();
    op.pattern = known_split_pattern(re);
    if (op.pattern.empty())
      r.fail(field + ".pattern.Regex", "is " + json(re).dump() + "; only the GPT-2 and Llama 3 (cl100k) split "
             "patterns are implemented");
    const std::string behavior = r.string(p, "behavior", field + ".behavior");
    if (behavior != "Isolated") r.fail(field + ".behavior", "is \"" + behavior + "\"; only \"Isolated\" is supported");
    if (r.boolean(p, "invert", field + ".invert", false)) r.fail(field + ".invert", "is true; not supported");
  } else if (t == "Digits") {
    op.kind = PreOp::Digits;
    op.individual = r.boolean(p, "individual_digits", field + ".individual_digits", false);
  } else if (t == "Metaspace") {
    op.kind = PreOp::Metaspace;
    op.replacement = r.string(p, "replacement", field + ".replacement");
    if (const json* s = r.get(p, "prepend_scheme")) {
      const std::string scheme = s->is_string() ? s->get<std::string>() : s->dump();
      if (scheme == "first") op.prepend = PreOp::First;
      else if (scheme == "always") op.prepend = PreOp::Always;
      else if (scheme == "never") op.prepend = PreOp::Never;
      else r.fail(field + ".prepend_scheme", "is " + scheme + "; expected \"first\", \"always\" or \"never\"");
    } else {  // tokenizers < 0.15 spelled it add_prefix_space
      op.prepend = r.boolean(p, "add_prefix_space", field + ".add_prefix_space", true) ? PreOp::Always : PreOp::Never;
    }
    op.split = r.boolean(p, "split", field + ".split", true);
  } else {
    r.fail(field + ".type", "is \"" + t + "\"; supported pre-tokenizers: ByteLevel, Split (GPT-2 / Llama 3 "
           "pattern), Digits, Metaspace, Sequence");
  }
  out->push_back(op);
}

// post_processor TemplateProcessing "single": [special...] $A [special...] -> BOS / EOS ids.
void load_template(const Reader& r, const json& pp, const std::string& field, int* bos, int* eos) {
  const std::string t = r.type(pp, field);
  if (t == "Sequence") {
    const json* list = r.get(pp, "processors");
    if (!list || !list->is_array()) r.fail(field + ".processors", "must be a list");
    for (size_t i = 0; i < list->size(); i++)
      load_template(r, (*list)[i], field + ".processors[" + std::to_string(i) + "]", bos, eos);
    return;
  }
  if (t == "ByteLevel") return;  // offsets only
  if (t != "TemplateProcessing")
    r.fail(field + ".type", "is \"" + t + "\"; without add_bos_token/add_eos_token in tokenizer_config.json only "
           "TemplateProcessing and ByteLevel post-processors are understood");
  const json* single = r.get(pp, "single");
  const json* specials = r.get(pp, "special_tokens");
  if (!single || !single->is_array()) r.fail(field + ".single", "must be a list");
  bool seen_a = false;
  for (const json& item : *single) {
    if (item.contains("Sequence")) {
      seen_a = true;
      continue;
    }
    const std::string name = item.contains("SpecialToken") ? token_text(item["SpecialToken"].value("id", json())) : "";
    if (name.empty()) r.fail(field + ".single", "has an item that is neither Sequence nor SpecialToken: " + item.dump());
    const json* st = specials ? r.get(*specials, name.c_str()) : nullptr;
    if (!st || !st->contains("ids") || !(*st)["ids"].is_array() || (*st)["ids"].size() != 1)
      r.fail(field + ".special_tokens", "has no single id for \"" + name + "\"");
    int* slot = seen_a ? eos : bos;
    if (*slot >= 0) r.fail(field + ".single", "adds more than one token " + std::string(seen_a ? "after" : "before") +
                           " the text; only one BOS and one EOS are supported");
    const json& id = (*st)["ids"][0];
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= kMaxId)
      r.fail(field + ".special_tokens", "gives \"" + name + "\" the id " + id.dump() + ", not a token id below 2^24");
    *slot = static_cast<int>(id.get<uint64_t>());
  }
}

std::vector<std::pair<std::string, std::string>> load_merges(const Reader& r, const json& m) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!m.is_array()) r.fail("model.merges", "must be a list");
  out.reserve(m.size());
  for (size_t i = 0; i < m.size(); i++) {
    const json& e = m[i];
    if (e.is_string()) {  // "a b" (tokenizers < 0.20)
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        r.fail("model.merges[" + std::to_string(i) + "]", "must be \"left right\" with one space, got " + e.dump());
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      out.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      r.fail("model.merges[" + std::to_string(i) + "]", "must be \"left right\" or [left, right], got " + e.dump());
    }
  }
  return out;
}

}  // namespace

void Tokenizer::Impl::load(const std::string& path) {
  std::error_code ec;
  MU_CHECK(fs::exists(path, ec), "%s: no such file or directory (give a tokenizer.json, or a Hugging Face model "
           "directory holding one)", path.c_str());
  file = fs::is_directory(path, ec) ? (fs::path(path) / "tokenizer.json").string() : path;
  if (!fs::exists(file, ec)) {
    MU_FAIL("%s: no tokenizer.json in this directory%s", path.c_str(),
            fs::exists(fs::path(path) / "tokenizer.model", ec)
                ? " (only a sentencepiece tokenizer.model: save the tokenizer with transformers' save_pretrained to "
                  "get a tokenizer.json)"
                : "");
  }
  const json j = parse_file(file);
  Reader r{file};
  if (!j.is_object()) MU_FAIL("%s: a tokenizer.json must be a JSON object", file.c_str());
  const json* model = r.get(j, "model");
  if (!model || !model->is_object()) r.fail("model", "is missing");
  // Files from old tokenizers versions have no model.type; a BPE model is recognised by its merges.
  std::string type = model->contains("type") ? r.string(*model, "type", "model.type") : "";
  if (type.empty() && model->contains("merges")) type = "BPE";
  if (type != "BPE")
    r.fail("model.type", "is \"" + type + "\"; supported: \"BPE\" (byte-level as in GPT-2 / Llama 3 / SmolLM2, or "
           "sentencepiece-style with byte_fallback as in Llama 2 / TinyLlama); WordPiece, Unigram and WordLevel "
           "models are not");
  if (const json* d = r.get(*model, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0))
    r.fail("model.dropout", "is " + d->dump() + "; BPE dropout is for training-time augmentation, not data preparation");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = r.get(*model, k); v && !(v->is_string() && v->get<std::string>().empty()))
      r.fail(std::string("model.") + k, "is " + v->dump() + "; not supported");

  const json* vj = r.get(*model, "vocab");
  if (!vj || !vj->is_object()) r.fail("model.vocab", "must be an object {token: id}");
  uint32_t max_id = 0;
  for (auto& [t, id] : vj->items()) {
    if (!id.is_number_unsigned()) r.fail("model.vocab", "maps \"" + t + "\" to " + id.dump() + ", not an id");
    if (id.get<uint64_t>() >= kMaxId)
      r.fail("model.vocab", "maps \"" + t + "\" to " + id.dump() + "; ids of 2^24 and above are not supported");
    vocab[t] = static_cast<uint32_t>(id.get<uint64_t>());
    max_id = std::max(max_id, vocab[t]);
  }
  MU_CHECK(!vocab.empty(), "%s: field \"model.vocab\" is empty", file.c_str());

  std::vector<bool> normalized;  // per added token: HF matches it in the normalized text
  if (const json* at = r.get(j, "added_tokens")) {
    if (!at->is_array()) r.fail("added_tokens", "must be a list");
    for (size_t i = 0; i < at->size(); i++) {
      const json& a = (*at)[i];
      const std::string f = "added_tokens[" + std::to_string(i) + "]";
      AddedToken t;
      t.content = r.string(a, "content", f + ".content");
      if (t.content.empty()) r.fail(f + ".content", "is empty");
      if (!a.contains("id") || !a["id"].is_number_unsigned())
        r.fail(f + ".id", "of \"" + t.content + "\" must be a non-negative integer, got " +
               (a.contains("id") ? a["id"].dump() : "none"));
      if (a["id"].get<uint64_t>() >= kMaxId)
        r.fail(f + ".id", "of \"" + t.content + "\" is " + a["id"].dump() + "; ids of 2^24 and above are not supported");
      t.id = static_cast<uint32_t>(a["id"].get<uint64_t>());
      t.special = r.boolean(a, "special", f + ".special", false);
      t.lstrip = r.boolean(a, "lstrip", f + ".lstrip", false);
      t.rstrip = r.boolean(a, "rstrip", f + ".rstrip", false);
      t.single_word = r.boolean(a, "single_word", f + ".single_word", false);
      normalized.push_back(r.boolean(a, "normalized", f + ".normalized", false));
      max_id = std::max(max_id, t.id);
      added.push_back(t);
    }
  }
  id_to_token.assign(static_cast<size_t>(max_id) + 1, "");
  is_added.assign(id_to_token.size(), 0);
  for (const auto& [t, id] : vocab) id_to_token[id] = t;
  for (size_t i = 0; i < added.size(); i++) {
    id_to_token[added[i].id] = added[i].content;
    is_added[added[i].id] = 1;
    added_by_byte[static_cast<unsigned char>(added[i].content[0])].push_back(static_cast<int>(i));
  }
  for (auto& v : added_by_byte)
    std::stable_sort(v.begin(), v.end(), [&](int a, int b) { return added[a].content.size() > added[b].content.size(); });

  if (const json* n = r.get(j, "normalizer")) load_normalizer(r, *n, "normalizer", &norm);
  // Hugging Face matches a non-special added token with "normalized": true in the normalized
  // text (after Prepend("▁"), Replace(" " -> "▁")), where "a b" reads "▁a▁b"; we match added
  // tokens in the raw text only, so the ids would differ. Special tokens are always matched raw.
  if (!norm.empty())
    for (size_t i = 0; i < added.size(); i++)
      if (normalized[i] && !added[i].special)
        r.fail("added_tokens[" + std::to_string(i) + "].normalized",
               "is true for the non-special token " + json(added[i].content).dump() +
               " in a tokenizer with a normalizer; matching added tokens in the normalized text is not supported "
               "(set \"normalized\": false to match it in the raw text)");
  if (const json* p = r.get(j, "pre_tokenizer")) load_pre(r, *p, "pre_tokenizer", &pre);
  for (size_t i = 0; i < pre.size(); i++) {
    if (pre[i].kind != PreOp::ByteLevel) continue;
    if (i + 1 != pre.size())
      r.fail("pre_tokenizer", "has a ByteLevel pre-tokenizer before others; it must come last (as in GPT-2, "
             "Llama 3, SmolLM2)");
    bpe_opts.byte_level = true;
  }
  if (bpe_opts.byte_level && !norm.empty())
    r.fail("normalizer", "is set on a byte-level tokenizer; only the sentencepiece style uses normalizers here");

  // The sentencepiece meta-space: from a Metaspace pre-tokenizer or a Replace(" " -> x).
  for (const PreOp& p : pre)
    if (p.kind == PreOp::Metaspace) meta = p.replacement, meta_prepended = meta_prepended || p.prepend != PreOp::Never;
  for (const NormOp& n : norm) {
    if (n.kind == NormOp::Replace && n.a == " ") meta = n.b;
    if (n.kind == NormOp::Prepend) meta_prepended = true;
  }

  bpe_opts.byte_fallback = r.boolean(*model, "byte_fallback", "model.byte_fallback", false);
  bpe_opts.ignore_merges = r.boolean(*model, "ignore_merges", "model.ignore_merges", false);
  bpe_opts.fuse_unk = r.boolean(*model, "fuse_unk", "model.fuse_unk", false);
  if (const json* u = r.get(*model, "unk_token")) {
    if (!u->is_string()) r.fail("model.unk_token", "must be a string or null");
    auto it = vocab.find(u->get<std::string>());
    if (it == vocab.end()) r.fail("model.unk_token", "is \"" + u->get<std::string>() + "\", which is not in model.vocab");
    bpe_opts.unk_id = static_cast<int>(it->second);
  }
  const json* mj = r.get(*model, "merges");
  if (!mj) r.fail("model.merges", "is missing");
  const auto merges = load_merges(r, *mj);
  n_merges = merges.size();
  try {
    bpe.init(vocab, merges, bpe_opts);
  } catch (const Error& e) {
    MU_FAIL("%s: %s", file.c_str(), e.what());
  }

  // Cutting a sentencepiece-style piece before a word-initial meta-space changes nothing
  // when no merge can produce a token that spans such a cut, i.e. no vocab token has a
  // non-meta character followed by meta. Then words can be encoded (and cached) one by one.
  if (!bpe_opts.byte_level && !meta.empty() && !bpe_opts.ignore_merges && vocab.count(meta)) {
    cut_at_meta = true;
    for (const auto& [t, id] : vocab) {
      for (size_t p = t.find(meta, 1); p != std::string::npos && cut_at_meta; p = t.find(meta, p + 1))
        if (p < meta.size() || t.compare(p - meta.size(), meta.size(), meta) != 0) cut_at_meta = false;
      if (!cut_at_meta) break;
    }
  }

  // BOS / EOS: tokenizer_config.json's add_bos_token / add_eos_token (LlamaTokenizer), else
  // the post-processor's template (Llama 3's TemplateProcessing), else none (GPT-2).
  const fs::path cfg_path = fs::path(file).parent_path() / "tokenizer_config.json";
  json cfg = json::object();
  if (fs::exists(cfg_path, ec)) cfg = parse_file(cfg_path.string());
  const std::string cfg_file = cfg_path.string();
  Reader rc{cfg_file};
  auto id_of = [&](const char* key) {
    const json* v = rc.get(cfg, key);
    if (!v) return -1;
    const std::string text = token_text(*v);
    if (text.empty()) rc.fail(key, "must be a token string or {\"content\": ...}, got " + v->dump());
    for (const AddedToken& a : added)
      if (a.content == text) return static_cast<int>(a.id);
    auto it = vocab.find(text);
    if (it == vocab.end()) rc.fail(key, "is \"" + text + "\", which is neither an added token nor in the vocab");
    return static_cast<int>(it->second);
  };
  bos = id_of("bos_token");
  eos = id_of("eos_token");
  const bool has_flags = rc.get(cfg, "add_bos_token") || rc.get(cfg, "add_eos_token");
  if (has_flags) {
    add_bos = rc.boolean(cfg, "add_bos_token", "add_bos_token", false);
    add_eos = rc.boolean(cfg, "add_eos_token", "add_eos_token", false);
    if (add_bos && bos < 0) rc.fail("bos_token", "is missing but add_bos_token is true");
    if (add_eos && eos < 0) rc.fail("eos_token", "is missing but add_eos_token is true");
    marks_source = "tokenizer_config.json";
  } else if (const json* pp = r.get(j, "post_processor")) {
    int tb = -1, te = -1;
    load_template(r, *pp, "post_processor", &tb, &te);
    add_bos = tb >= 0, add_eos = te >= 0;
    if (tb >= 0) bos = tb;
    if (te >= 0) eos = te;
    marks_source = "post_processor";
  } else {
    marks_source = "none configured";
  }
  for (int id : {bos, eos})
    MU_CHECK(id < static_cast<int>(id_to_token.size()), "%s: BOS/EOS id %d is outside the vocabulary", file.c_str(), id);
}

}  // namespace mu
