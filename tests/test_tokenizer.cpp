// Hugging Face tokenizer.json reading and encoding (tools/tokenizer). Small tokenizers are
// written here with merges whose results are worked out by hand in the comments; the
// reference test compares against ids produced by the Hugging Face tokenizers library itself
// (tests/data/tokenizer/reference.json, see make_fixtures.py there).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/fileio.h"
#include "tests/util_compare.h"
#include "tests/util_tokenizer.h"
#include "tools/tokenizer/tokenizer.h"

using namespace mu;
using namespace mu::test;
namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<uint32_t>;

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else if (cp < 0x800) s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
  else s += static_cast<char>(0xE0 | (cp >> 12)), s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
       s += static_cast<char>(0x80 | (cp & 0x3F));
  return s;
}

// GPT-2's documented byte -> character map: '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand
// for themselves, the other bytes take U+0100, U+0101, ... in byte order (space -> 'Ġ' U+0120).
std::string gpt2_char(int b) {
  auto printable = [](int x) { return (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF); };
  if (printable(b)) return utf8(static_cast<uint32_t>(b));
  int n = 0;
  for (int x = 0; x < b; x++) n += !printable(x);
  return utf8(256u + static_cast<uint32_t>(n));
}

// Byte-level test tokenizer: ids 0..255 are the bytes, then
//   256 "Ġt" (r0: Ġ t)   257 "he" (r1: h e)    258 "Ġthe" (r2: Ġt he)  259 "ll" (r3: l l)
//   260 "ell" (r4: e ll) 261 "'s" (r5: ' s)    262 "'S" (r6: ' S)      263 "12" (r7: 1 2)
//   264 "34" (r8: 3 4)   265 <|endoftext|> (added, special)           266 "hello" (no merge makes it)
//   267 "th" (r9: t h; ranked below "h e", so "the" is t + he although t h comes first)
json byte_level_tokenizer(const json& pre_tokenizer, bool ignore_merges) {
  json vocab;
  for (int b = 0; b < 256; b++) vocab[gpt2_char(b)] = b;
  const std::string sp = gpt2_char(' ');
  std::vector<std::pair<std::string, std::string>> merges = {
      {sp, "t"}, {"h", "e"}, {sp + "t", "he"}, {"l", "l"}, {"e", "ll"}, {"'", "s"}, {"'", "S"}, {"1", "2"}, {"3", "4"}};
  int id = 256;
  json mj = json::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    mj.push_back(json::array({a, b}));
  }
  vocab["hello"] = 266;
  vocab["th"] = 267;
  mj.push_back(json::array({"t", "h"}));
  return {{"added_tokens", {{{"id", 265}, {"content", "<|endoftext|>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor", nullptr},
          {"model",
           {{"type", "BPE"}, {"vocab", vocab}, {"merges", mj}, {"ignore_merges", ignore_merges}, {"byte_fallback", false}}}};
}

const json kGpt2Pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
json llama3_pre() {
  const std::string re = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}


class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override { tmp_ = make_temp_dir("tok"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(tmp_);
  }
  // Writes DIR/tokenizer.json (+ tokenizer_config.json) and returns DIR.
  std::string write(const std::string& name, const json& tok, const json& cfg = nullptr) {
    const std::string d = tmp_ + "/" + name;
    fs::create_directories(d);
    write_text(d + "/tokenizer.json", tok.dump());
    if (!cfg.is_null()) write_text(d + "/tokenizer_config.json", cfg.dump());
    return d;
  }
  std::string tmp_;
};

TEST_F(TokenizerTest, ByteLevelGpt2Pattern) {
  Tokenizer t(write("gpt2", byte_level_tokenizer(kGpt2Pre, false)));
  EXPECT_EQ(t.vocab_size(), 268);
  EXPECT_EQ(t.encode("hello"), (Ids{257, 259, 111}));  // h e -> he (r1) first, then l l (r3)
  EXPECT_EQ(t.encode("yell"), (Ids{121, 260}));        // l l (r3), then e ll (r4)
  EXPECT_EQ(t.encode(" the"), (Ids{258}));             // Ġ t (r0), h e (r1), Ġt he (r2)
  EXPECT_EQ(t.encode("the"), (Ids{116, 257}));  // rank order: h e (r1) beats the leftmost t h (r9)
  EXPECT_EQ(t.encode("th"), (Ids{267}));
  // Pieces "hello" " the" " " " world" "\n": of two spaces the first stands alone (\s+(?!\S)).
  EXPECT_EQ(t.encode("hello the  world\n"), (Ids{257, 259, 111, 258, 32, 32, 119, 111, 114, 108, 100, 10}));
  // GPT-2's contractions are case-sensitive: "'S" is "'" then "S", so r6 cannot apply.
  EXPECT_EQ(t.encode("it's IT'S"), (Ids{105, 116, 261, 32, 73, 84, 39, 83}));
  EXPECT_EQ(t.encode("12345"), (Ids{263, 264, 53}));  // one \p{N}+ piece: 1 2 (r7), 3 4 (r8)
  EXPECT_EQ(t.encode("a<|endoftext|>b"), (Ids{97, 265, 98}));
  EXPECT_EQ(t.encode("\xC3\xA9"), (Ids{0xC3, 0xA9}));  // é: its two bytes
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_FALSE(t.add_bos());
  EXPECT_EQ(t.bos_id(), -1);
  for (const char* s : {"hello the  world\n", "it's \xC3\xA9 <|endoftext|> 12345\t\r\n", "\xF0\x9F\x98\x80 x"})
    EXPECT_EQ(t.decode(t.encode(s)), s);
}

TEST_F(TokenizerTest, ByteLevelLlama3PatternAndIgnoreMerges) {
  Tokenizer t(write("llama3", byte_level_tokenizer(llama3_pre(), true)));
  EXPECT_EQ(t.encode("hello"), (Ids{266}));  // ignore_merges: a whole vocab word wins
  EXPECT_EQ(t.encode("yell"), (Ids{121, 260}));
  EXPECT_EQ(t.encode("it's IT'S"), (Ids{105, 116, 261, 32, 73, 84, 262}));  // (?i:'s): "'S" is one piece
  EXPECT_EQ(t.encode("12345"), (Ids{263, 51, 52, 53}));                     // \p{N}{1,3}: "123" "45"
  // "\n\n" before a word: \s*[\r\n]+ takes both newlines, the word keeps no prefix.
  EXPECT_EQ(t.encode("a\n\nthe"), (Ids{97, 10, 10, 116, 257}));
  Tokenizer no_ignore(write("llama3b", byte_level_tokenizer(llama3_pre(), false)));
  EXPECT_EQ(no_ignore.encode("hello"), (Ids{257, 259, 111}));
}

TEST_F(TokenizerTest, SentencepieceStyleWithByteFallback) {
  Tokenizer t(write("llama2", sp_tokenizer(true, "<unk>", true, false), llama_tokenizer_config()));
  EXPECT_EQ(t.vocab_size(), 266);
  // "▁ab▁ab": ▁ a (r0) at both places before a b (r1), then ▁a b (r2).
  EXPECT_EQ(t.encode("ab ab"), (Ids{264, 264}));
  EXPECT_EQ(t.encode("b a"), (Ids{259, 261, 262}));      // "▁b▁a": only ▁ a merges
  EXPECT_EQ(t.encode("a\xD0\xB6"), (Ids{262, 211, 185}));  // ж (D0 B6) is not in the vocab: <0xD0> <0xB6>
  EXPECT_EQ(t.encode("\xC3\xA9"), (Ids{259, 265}));
  // The legacy normalizer prepends ▁ to every segment between added tokens.
  EXPECT_EQ(t.encode("</s>ab"), (Ids{2, 264}));
  EXPECT_EQ(t.encode("ab</s>"), (Ids{264, 2}));
  EXPECT_TRUE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  Ids doc;
  t.encode_document("ab", &doc);
  EXPECT_EQ(doc, (Ids{1, 264}));
  t.set_add_eos(true);
  doc.clear();
  t.encode_document("ab", &doc);
  EXPECT_EQ(doc, (Ids{1, 264, 2}));
  EXPECT_EQ(t.decode({264, 262, 211, 185}), "ab a\xD0\xB6");
  EXPECT_EQ(t.token_id("<s>"), 1);
  EXPECT_EQ(t.token_id(kMeta + "ab"), 264);
  EXPECT_EQ(t.token_id("zz"), -1);
}

TEST_F(TokenizerTest, MetaspacePrependFirst) {
  Tokenizer t(write("tiny", sp_tokenizer(true, "<unk>", true, true), llama_tokenizer_config()));
  EXPECT_EQ(t.encode("ab ab"), (Ids{264, 264}));
  // prepend_scheme "first": a segment after an added token does not get the ▁.
  EXPECT_EQ(t.encode("</s>ab"), (Ids{2, 263}));
}

TEST_F(TokenizerTest, UnknownCharacters) {
  Tokenizer fused(write("fuse", sp_tokenizer(false, "<unk>", true, false)));
  EXPECT_EQ(fused.encode("a\xD0\xB6\xD0\xB6"), (Ids{262, 0}));  // "▁aжж": one <unk> for the run
  Tokenizer unfused(write("nofuse", sp_tokenizer(false, "<unk>", false, false)));
  EXPECT_EQ(unfused.encode("a\xD0\xB6\xD0\xB6"), (Ids{262, 0, 0}));
  Tokenizer none(write("nounk", sp_tokenizer(false, nullptr, false, false)));
  EXPECT_EQ(none.encode("a\xD0\xB6\xD0\xB6"), (Ids{262}));  // dropped, as tokenizers does, and counted
  EXPECT_EQ(none.dropped_chars(), 2);
}

TEST_F(TokenizerTest, TemplateProcessingGivesBos) {
  json tok = byte_level_tokenizer(kGpt2Pre, false);
  tok["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {265}}, {"tokens", {"<|endoftext|>"}}}}}}};
  Tokenizer t(write("tmpl", tok));
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.bos_id(), 265);
  Ids doc;
  t.encode_document(" the", &doc);
  EXPECT_EQ(doc, (Ids{265, 258}));
}

// Each unsupported or broken setting fails at load, naming the file and the field.
TEST_F(TokenizerTest, BadTokenizerFilesNameTheField) {
  auto expect_error = [&](const std::string& name, const json& tok, const std::vector<std::string>& want,
                          const json& cfg = nullptr) {
    const std::string d = write(name, tok, cfg);
    try {
      Tokenizer t(d);
      ADD_FAILURE() << name << ": no error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const std::string& w : want) EXPECT_NE(msg.find(w), std::string::npos) << name << ": '" << w << "' not in: " << msg;
    }
  };
  json base = byte_level_tokenizer(kGpt2Pre, false);
  json t = base;
  t["model"]["type"] = "WordPiece";
  expect_error("wordpiece", t, {"tokenizer.json", "\"model.type\"", "WordPiece"});
  t["model"]["type"] = "Unigram";
  expect_error("unigram", t, {"\"model.type\"", "Unigram"});
  t = base;
  t["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error("whitespace", t, {"\"pre_tokenizer.type\"", "Whitespace"});
  t = base;
  t["pre_tokenizer"] = llama3_pre();
  t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  expect_error("regex", t, {"\"pre_tokenizer.pretokenizers[0].pattern.Regex\""});
  t = base;
  t["normalizer"] = {{"type", "NFC"}};
  expect_error("nfc", t, {"\"normalizer.type\"", "NFC"});
  t = base;
  t["model"]["merges"].push_back(json::array({"h", "q\xC3\xA9"}));
  expect_error("merge", t, {"model.merges", "[10]", "q\xC3\xA9"});
  t = base;
  t["model"]["dropout"] = 0.1;
  expect_error("dropout", t, {"\"model.dropout\""});
  expect_error("bos", sp_tokenizer(true, "<unk>", true, false), {"tokenizer_config.json", "\"bos_token\"", "<bos>"},
               {{"bos_token", "<bos>"}, {"add_bos_token", true}});
  write_text(tmp_ + "/notjson.json", "{\"model\": ");
  EXPECT_THROW(Tokenizer(tmp_ + "/notjson.json"), Error);
  fs::create_directories(tmp_ + "/spm_only");
  write_text(tmp_ + "/spm_only/tokenizer.model", "x");
  try {
    Tokenizer x(tmp_ + "/spm_only");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("save_pretrained"), std::string::npos) << e.what();
  }
}

// Hugging Face matches a non-special added token with "normalized": true in the normalized
// text (Llama 2's "a b" reads "▁a▁b"), the engine in the raw text: the ids would differ, so such a
// tokenizer is refused, naming the file, the entry, the token and the flag. Special tokens, raw
// added tokens, and normalized ones without a normalizer (nothing to differ) still load.
TEST_F(TokenizerTest, NormalizedAddedTokenWithANormalizerIsRefused) {
  json t = sp_tokenizer(true, "<unk>", true, false);
  t["added_tokens"].push_back({{"id", 266}, {"content", "b a"}, {"special", false}, {"normalized", true}});
  const std::string d = write("normadded", t, llama_tokenizer_config());
  try {
    Tokenizer x(d);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& w : {d + "/tokenizer.json", std::string("\"added_tokens[3].normalized\""),
                                 std::string("\"b a\""), std::string("not supported")})
      EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
  json ok = t;
  ok["added_tokens"][3]["normalized"] = false;  // matched raw: what the engine does
  Tokenizer raw(write("rawadded", ok, llama_tokenizer_config()));
  EXPECT_EQ(raw.encode("b a"), (Ids{266}));
  ok = t;
  ok["added_tokens"][3]["special"] = true;  // special tokens are matched raw by Hugging Face too
  EXPECT_NO_THROW(Tokenizer(write("specialadded", ok, llama_tokenizer_config())));
  ok = sp_tokenizer(true, "<unk>", true, true);  // Metaspace, no normalizer
  ok["added_tokens"].push_back(t["added_tokens"][3]);
  EXPECT_NO_THROW(Tokenizer(write("nonorm", ok, llama_tokenizer_config())));
  json bl = byte_level_tokenizer(kGpt2Pre, false);
  bl["added_tokens"].push_back({{"id", 268}, {"content", "zz"}, {"special", false}, {"normalized", true}});
  EXPECT_NO_THROW(Tokenizer(write("bytelevel", bl)));
  // The fixtures in the layouts of real models load: their added tokens are special and raw.
  const std::string fixtures = std::string(MU_SOURCE_DIR) + "/tests/data/tokenizer/";
  for (const char* name : {"gpt2", "llama3", "smollm2", "llama2", "tinyllama"})
    EXPECT_NO_THROW(Tokenizer(fixtures + name)) << name;
}

// JSON ids are 64-bit: one of 2^32 or more must be refused with the field and token named, not
// wrapped to 32 bits (2^32 + 100 would become 100 and quietly share that id).
TEST_F(TokenizerTest, IdsBeyond32BitsAreRefusedNotWrapped) {
  auto expect_error = [&](const std::string& name, const json& tok, const std::vector<std::string>& want) {
    try {
      Tokenizer t(write(name, tok));
      ADD_FAILURE() << name << ": no error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const std::string& w : want) EXPECT_NE(msg.find(w), std::string::npos) << name << ": '" << w << "' not in: " << msg;
    }
  };
  const json base = byte_level_tokenizer(kGpt2Pre, false);
  const uint64_t k2_32 = uint64_t{1} << 32, k2_40 = uint64_t{1} << 40;
  json t = base;
  t["model"]["vocab"]["zz"] = k2_40;
  expect_error("vocab_2_40", t, {"tokenizer.json", "\"model.vocab\"", "\"zz\"", std::to_string(k2_40)});
  t = base;
  t["model"]["vocab"]["zz"] = k2_32 + 100;
  expect_error("vocab_2_32", t, {"\"model.vocab\"", "\"zz\"", std::to_string(k2_32 + 100)});
  t = base;
  t["model"]["vocab"]["zz"] = -5;
  expect_error("vocab_negative", t, {"\"model.vocab\"", "\"zz\"", "-5"});
  t = base;
  t["model"]["vocab"]["zz"] = 5.5;
  expect_error("vocab_fraction", t, {"\"model.vocab\"", "\"zz\"", "5.5"});
  t = base;
  t["added_tokens"].push_back({{"id", k2_32 + 100}, {"content", "<|pad|>"}, {"special", true}});
  expect_error("added_2_32", t, {"tokenizer.json", "\"added_tokens[1].id\"", "<|pad|>", std::to_string(k2_32 + 100)});
  t = base;
  t["added_tokens"].push_back({{"id", -1}, {"content", "<|pad|>"}});
  expect_error("added_negative", t, {"\"added_tokens[1].id\"", "<|pad|>", "-1"});
  t = base;
  t["added_tokens"].push_back({{"id", 270.0}, {"content", "<|pad|>"}});
  expect_error("added_fraction", t, {"\"added_tokens[1].id\"", "<|pad|>", "270.0"});
  // The post-processor's special-token ids are read the same way.
  t = base;
  t["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {k2_32 + 265}}, {"tokens", {"<|endoftext|>"}}}}}}};
  expect_error("template_2_32", t, {"\"post_processor.special_tokens\"", "<|endoftext|>", std::to_string(k2_32 + 265)});
  t["post_processor"]["special_tokens"]["<|endoftext|>"]["ids"] = {-1};
  expect_error("template_negative", t, {"\"post_processor.special_tokens\"", "<|endoftext|>", "-1"});
}

// The fixtures' ids come from Hugging Face tokenizers (Rust, via its Node bindings).
TEST(TokenizerReference, MatchesHuggingFaceTokenizers) {
  const std::string dir = std::string(MU_SOURCE_DIR) + "/tests/data/tokenizer";
  const json texts = json::parse(read_text_file(dir + "/texts.json"));
  const json ref = json::parse(read_text_file(dir + "/reference.json"));
  int compared = 0;
  for (const char* name : {"gpt2", "llama3", "smollm2", "llama2", "tinyllama"}) {
    Tokenizer t(dir + "/" + name);
    const json& ids = ref.at("ids").at(name);
    ASSERT_EQ(ids.size(), texts.size()) << name;
    for (size_t i = 0; i < texts.size(); i++) {
      const std::string text = texts[i].get<std::string>();
      EXPECT_EQ(t.encode(text), ids[i].get<Ids>()) << name << " text " << i << ": " << json(text).dump();
      if (i < ref.at("doc_ids").at(name).size()) {
        Ids doc;
        t.encode_document(text, &doc);
        EXPECT_EQ(doc, ref.at("doc_ids").at(name)[i].get<Ids>()) << name << " document " << i;
      }
      // Byte-level BPE loses nothing: decoding gives the text back.
      if (std::string(name) != "llama2" && std::string(name) != "tinyllama") {
        EXPECT_EQ(t.decode(t.encode(text)), text);
      }
      compared++;
    }
  }
  EXPECT_EQ(compared, 5 * static_cast<int>(texts.size()));
}

}  // namespace
