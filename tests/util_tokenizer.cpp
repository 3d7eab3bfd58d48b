#include "tests/util_tokenizer.h"

#include <cstdio>
#include <vector>

namespace mu::test {

using nlohmann::json;

const std::string kMeta = "\xE2\x96\x81";

json sp_tokenizer(bool byte_fallback, const json& unk, bool fuse_unk, bool metaspace) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; b++) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    vocab[buf] = 3 + b;
  }
  vocab[kMeta] = 259, vocab["a"] = 260, vocab["b"] = 261, vocab[kMeta + "a"] = 262, vocab["ab"] = 263;
  vocab[kMeta + "ab"] = 264, vocab["\xC3\xA9"] = 265;
  json added = json::array();
  for (int i = 0; i < 3; i++)
    added.push_back({{"id", i}, {"content", std::vector<std::string>{"<unk>", "<s>", "</s>"}[i]}, {"special", true}});
  json norm = {{"type", "Sequence"},
               {"normalizers",
                {{{"type", "Prepend"}, {"prepend", kMeta}},
                 {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMeta}}}}};
  json pre = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}, {"split", false}};
  return {{"added_tokens", added},
          {"normalizer", metaspace ? json(nullptr) : norm},
          {"pre_tokenizer", metaspace ? pre : json(nullptr)},
          {"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", json::array({json::array({kMeta, "a"}), json::array({"a", "b"}), json::array({kMeta + "a", "b"})})},
            {"unk_token", unk},
            {"fuse_unk", fuse_unk},
            {"byte_fallback", byte_fallback}}}};
}

json llama_tokenizer_config() {
  return {{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
}

}  // namespace mu::test
