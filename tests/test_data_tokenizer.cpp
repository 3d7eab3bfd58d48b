// mu-data with a Hugging Face tokenizer.json: JSONL documents, BOS/EOS per document, uint16
// or uint32 shards by vocabulary size, and bad input that must fail before any shard exists.
// Expected ids follow the hand-checked merges of tests/util_tokenizer.h.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/util_compare.h"
#include "tests/util_tokenizer.h"
#include "train/shards.h"

using namespace mu;
using namespace mu::test;
namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<uint32_t>;

namespace {

class MuDataTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = make_temp_dir("datatok");
    fs::create_directories(tmp_ + "/tok");
    write_text(tmp_ + "/tok/tokenizer.json", sp_tokenizer(true, "<unk>", true, false).dump());
    write_text(tmp_ + "/tok/tokenizer_config.json", llama_tokenizer_config().dump());
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(tmp_);
  }
  RunResult mu_data(const std::string& args) {
    return run_cmd(tool("mu-data") + " --out-dir " + tmp_ + "/out --val-fraction 0 " + args);
  }
  // All tokens of <out>/<name>_train_*.bin, checking the token width.
  Ids read_train(const std::string& name, int want_width, int want_vocab) {
    Shard s(tmp_ + "/out/" + name + "_train_000000.bin");
    EXPECT_EQ(s.width(), want_width);
    EXPECT_EQ(s.vocab_hint(), want_vocab);
    Ids out;
    for (int64_t i = 0; i < s.size(); i++) out.push_back(s.at(i));
    return out;
  }
  int shard_files() {
    int n = 0;
    if (!fs::exists(tmp_ + "/out")) return 0;
    for (const auto& e : fs::directory_iterator(tmp_ + "/out")) n += e.path().extension() == ".bin" || e.path().string().find(".tmp") != std::string::npos;
    return n;
  }
  std::string tmp_;
};

TEST_F(MuDataTokenizer, JsonlDocumentsGetBosEach) {
  // Line 3 is empty text (skipped), line 4 blank; "aж" falls back to the bytes of ж.
  write_text(tmp_ + "/docs.jsonl",
             "{\"text\": \"ab ab\", \"id\": 1}\n{\"text\": \"b a\"}\n{\"text\": \"\"}\n\n{\"text\": \"a\\u0436\"}\n");
  RunResult r = mu_data("--input " + tmp_ + "/docs.jsonl --jsonl --tokenizer " + tmp_ + "/tok");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("docs", 2, 266), (Ids{1, 264, 264, 1, 259, 261, 262, 1, 262, 211, 185}));
  EXPECT_NE(r.output.find("3 documents (1 empty ones skipped)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tokens/s"), std::string::npos) << r.output;

  // --eos yes appends </s>; --bos no drops <s>; another --field.
  write_text(tmp_ + "/body.jsonl", "{\"body\": \"ab\"}\n{\"body\": \"b\"}\n");
  r = mu_data("--input " + tmp_ + "/body.jsonl --jsonl --field body --bos no --eos yes --tokenizer " + tmp_ +
              "/tok/tokenizer.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("body", 2, 266), (Ids{264, 2, 259, 261, 2}));
}

TEST_F(MuDataTokenizer, TextFileIsOneDocument) {
  write_text(tmp_ + "/t.txt", "ab ab\nb a");  // "▁ab▁ab\nb▁a": \n is not in the vocab: <0x0A>
  RunResult r = mu_data("--input " + tmp_ + "/t.txt --tokenizer " + tmp_ + "/tok");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("t", 2, 266), (Ids{1, 264, 264, 3 + 0x0A, 261, 262}));
}

// A vocabulary past 65536 ids needs uint32 tokens (llm.c magic 20240801).
TEST_F(MuDataTokenizer, LargeVocabularyWritesUint32) {
  json tok = sp_tokenizer(true, "<unk>", true, false);
  tok["added_tokens"].push_back({{"id", 70000}, {"content", "<big>"}, {"special", true}});
  fs::create_directories(tmp_ + "/big");
  write_text(tmp_ + "/big/tokenizer.json", tok.dump());
  write_text(tmp_ + "/big.jsonl", "{\"text\": \"ab<big>b\"}\n");
  RunResult r = mu_data("--input " + tmp_ + "/big.jsonl --jsonl --tokenizer " + tmp_ + "/big --bos no");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("big", 4, 70001), (Ids{264, 70000, 259, 261}));
  EXPECT_NE(r.output.find("uint32"), std::string::npos) << r.output;
}

// Bad input: exit 1, a message naming the field / line / option, and no shard written.
TEST_F(MuDataTokenizer, BadInputFailsBeforeWriting) {
  auto expect_fail = [&](const std::string& args, const std::vector<std::string>& want) {
    RunResult r = mu_data(args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_FALSE(r.signaled);
    for (const std::string& w : want) EXPECT_NE(r.output.find(w), std::string::npos) << "'" << w << "' not in: " << r.output;
    EXPECT_EQ(shard_files(), 0) << args;
  };
  write_text(tmp_ + "/ok.jsonl", "{\"text\": \"ab\"}\n");
  json uni = sp_tokenizer(true, "<unk>", true, false);
  uni["model"]["type"] = "Unigram";
  fs::create_directories(tmp_ + "/uni");
  write_text(tmp_ + "/uni/tokenizer.json", uni.dump());
  expect_fail("--input " + tmp_ + "/ok.jsonl --jsonl --tokenizer " + tmp_ + "/uni", {"\"model.type\"", "Unigram"});
  expect_fail("--input " + tmp_ + "/ok.jsonl --jsonl --tokenizer " + tmp_ + "/nowhere", {"tokenizer.json"});

  write_text(tmp_ + "/bad.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"b\"}\n{\"text\": oops}\n");
  expect_fail("--input " + tmp_ + "/bad.jsonl --jsonl --tokenizer " + tmp_ + "/tok", {"bad.jsonl:3", "not valid JSON"});
  write_text(tmp_ + "/nofield.jsonl", "{\"text\": \"ab\"}\n{\"body\": \"b\"}\n");
  expect_fail("--input " + tmp_ + "/nofield.jsonl --jsonl --tokenizer " + tmp_ + "/tok", {"nofield.jsonl:2", "\"text\""});
  write_text(tmp_ + "/num.jsonl", "{\"text\": 5}\n");
  expect_fail("--input " + tmp_ + "/num.jsonl --jsonl", {"num.jsonl:1", "must be a string"});
  expect_fail("--input " + tmp_ + "/ok.jsonl --jsonl --bos yes", {"--bos", "--tokenizer"});
  expect_fail("--input " + tmp_ + "/ok.jsonl --jsonl --bos maybe --tokenizer " + tmp_ + "/tok", {"--bos", "maybe"});
  expect_fail("--input " + tmp_ + "/ok.jsonl --jsonl --strip-pos-tags", {"--strip-pos-tags"});
  // A tokenizer without EOS cannot be asked for one.
  json noeos = sp_tokenizer(true, "<unk>", true, false);
  fs::create_directories(tmp_ + "/noeos");
  write_text(tmp_ + "/noeos/tokenizer.json", noeos.dump());
  expect_fail("--input " + tmp_ + "/ok.jsonl --jsonl --eos yes --tokenizer " + tmp_ + "/noeos", {"EOS"});
}

// A directory given as --input opens fine and fails only at the first read: the message must
// say it is a directory, in both the text and the JSON-lines reader.
TEST_F(MuDataTokenizer, DirectoryInputIsNamed) {
  const std::string d = tmp_ + "/tok";  // a directory (the fixture's tokenizer)
  for (const std::string& mode : {std::string(""), std::string(" --jsonl")}) {
    RunResult r = mu_data("--input " + d + mode);
    EXPECT_EQ(r.exit_code, 1) << mode << "\n" << r.output;
    EXPECT_FALSE(r.signaled);
    EXPECT_NE(r.output.find(d + " is a directory"), std::string::npos) << mode << "\n" << r.output;
    EXPECT_EQ(shard_files(), 0) << mode;
  }
}

// Without --tokenizer, JSONL documents are byte tokens, each ended by a newline (the byte
// tokenizer's EOS) so that {"text":"hello"} {"text":"world"} do not read "helloworld";
// --eos no glues them, and a text file (one document) keeps its bytes unless --eos yes.
TEST_F(MuDataTokenizer, JsonlWithByteTokens) {
  write_text(tmp_ + "/b.jsonl", "{\"text\": \"hi\"}\n{\"text\": \"\\u00e9\"}\n");
  RunResult r = mu_data("--input " + tmp_ + "/b.jsonl --jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("b", 2, 256), (Ids{'h', 'i', '\n', 0xC3, 0xA9, '\n'}));
  r = mu_data("--input " + tmp_ + "/b.jsonl --jsonl --eos yes --name yes");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("yes", 2, 256), (Ids{'h', 'i', '\n', 0xC3, 0xA9, '\n'}));
  r = mu_data("--input " + tmp_ + "/b.jsonl --jsonl --eos no --name glued");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("glued", 2, 256), (Ids{'h', 'i', 0xC3, 0xA9}));
  write_text(tmp_ + "/t.txt", "hi");
  r = mu_data("--input " + tmp_ + "/t.txt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("t", 2, 256), (Ids{'h', 'i'}));
  r = mu_data("--input " + tmp_ + "/t.txt --eos yes --name teos");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_train("teos", 2, 256), (Ids{'h', 'i', '\n'}));
  r = run_cmd(tool("mu-data") + " --help");
  EXPECT_NE(r.output.find("Byte tokens: a newline"), std::string::npos) << r.output;
}

}  // namespace
