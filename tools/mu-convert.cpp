// mu-convert: Hugging Face Llama directory <-> llm.mu checkpoint.
//   --from-hf DIR  --out FILE      HF -> engine checkpoint
//   --model FILE   --to-hf DIR     engine checkpoint -> HF directory (transformers loads it)
// Any source goes with any destination (HF -> HF re-shards or changes the dtype).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/cli.h"
#include "core/fileio.h"
#include "model/checkpoint.h"
#include "model/hf_export.h"
#include "model/hf_import.h"

using namespace mu;

namespace {

DType parse_dtype(const std::string& s, bool hf) {
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (hf && (s == "f16" || s == "float16")) return DType::F16;
  MU_FAIL("--dtype must be %s, got '%s'", hf ? "f32, bf16 or f16" : "f32 or bf16 (engine checkpoints)", s.c_str());
}

HostModel load_checkpoint(const std::string& path) {
  HostModel m = make_host_model(checkpoint_config(path));
  load_checkpoint_weights(path, m.cfg, m.w);
  return m;
}

namespace fs = std::filesystem;

// The files an import of the HF directory reads: config.json, model.safetensors or the index
// and the shards its weight_map names (an unreadable index fails the import later anyway).
std::vector<std::string> hf_source_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const char* f : {"config.json", "model.safetensors", "model.safetensors.index.json"})
    files.push_back((fs::path(dir) / f).string());
  try {
    const nlohmann::json j = nlohmann::json::parse(read_text_file((fs::path(dir) / "model.safetensors.index.json").string()));
    for (const auto& [name, file] : j.at("weight_map").items())
      if (file.is_string()) files.push_back((fs::path(dir) / file.get<std::string>()).string());
  } catch (const std::exception&) {
  }
  return files;
}

// A destination that is, or would replace, a source would destroy it: refused before anything
// is read, naming both flags.
void check_not_a_source(const std::string& from_hf, const std::string& model, const std::string& out,
                        const std::string& to_hf, const std::string& tokenizer_from) {
  if (!out.empty()) {
    if (!model.empty())
      MU_CHECK(!same_file(out, model), "--out %s is the same file as --model %s; writing it would destroy the "
               "source; give another --out", out.c_str(), model.c_str());
    if (!from_hf.empty()) {
      for (const std::string& f : hf_source_files(from_hf))
        MU_CHECK(!same_file(out, f), "--out %s is %s of the --from-hf directory %s; writing it would destroy the "
                 "source; give another --out", out.c_str(), f.c_str(), from_hf.c_str());
      std::error_code ec;
      MU_CHECK(!(fs::exists(out, ec) && path_within(out, from_hf)), "--out %s is a file of the --from-hf directory %s; "
               "writing it would replace part of the source; give another --out", out.c_str(), from_hf.c_str());
    }
    return;
  }
  // --to-hf replaces the whole directory (with --force): nothing we read may live in it.
  if (!model.empty())
    MU_CHECK(!path_within(model, to_hf), "--to-hf %s holds --model %s; the export replaces that directory and would "
             "destroy the source; give another --to-hf", to_hf.c_str(), model.c_str());
  if (!from_hf.empty())
    MU_CHECK(!path_within(from_hf, to_hf), "--to-hf %s is (or holds) the --from-hf directory %s; the export replaces "
             "it and would destroy the source (its tokenizer files too); give another --to-hf", to_hf.c_str(),
             from_hf.c_str());
  if (!tokenizer_from.empty())
    MU_CHECK(!path_within(tokenizer_from, to_hf), "--to-hf %s is (or holds) the --tokenizer-from directory %s; the "
             "export replaces it and would destroy the source; give another --to-hf", to_hf.c_str(),
             tokenizer_from.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  return run_main("mu-convert", [&] {
    std::string from_hf, model, out, to_hf, dtype, max_shard = "5GB", tokenizer_from;
    bool force = false;
    Cli cli("mu-convert", "Convert Llama checkpoints between Hugging Face directories and llm.mu checkpoints.");
    cli.section("source (one of)");
    cli.add_string("from-hf", &from_hf, "DIR",
                   "HF model directory: config.json + model.safetensors (or a sharded index)");
    cli.add_string("model", &model, "FILE", "llm.mu checkpoint (from mu-convert --out or mu-train)");
    cli.section("destination (one of)");
    cli.add_string("out", &out, "FILE", "llm.mu checkpoint to write (.safetensors)");
    cli.add_string("to-hf", &to_hf, "DIR",
                   "HF directory to write: config.json, model.safetensors (sharded above --max-shard-size)");
    cli.section("options");
    cli.add_string("dtype", &dtype, "f32|bf16|f16",
                   "stored dtype. --out: f32 (default) or bf16. --to-hf: f32, bf16 or f16; default the "
                   "config's torch_dtype when it is one of those, else f32");
    cli.add_string("max-shard-size", &max_shard, "SIZE",
                   "--to-hf: largest model-*.safetensors shard (5GB, 500MB, 2GiB or bytes)");
    cli.add_string("tokenizer-from", &tokenizer_from, "DIR",
                   "--to-hf: copy tokenizer.json, tokenizer_config.json, special_tokens_map.json, tokenizer.model "
                   "and generation_config.json from this HF directory");
    cli.add_flag("force", &force, "--to-hf: replace an existing non-empty directory");
    cli.epilog(
        "examples:\n"
        "  mu-convert --from-hf ~/models/SmolLM2-135M --out smollm2.safetensors\n"
        "  mu-convert --model runs/ft/model.safetensors --to-hf exported --dtype bf16 \\\n"
        "             --tokenizer-from ~/models/SmolLM2-135M");
    if (!cli.parse(argc, argv)) return 0;
    MU_CHECK(from_hf.empty() != model.empty(), "give exactly one source: --from-hf DIR or --model FILE (see --help)");
    MU_CHECK(out.empty() != to_hf.empty(), "give exactly one destination: --out FILE or --to-hf DIR (see --help)");
    if (!out.empty()) {
      for (const char* o : {"max-shard-size", "tokenizer-from", "force"})
        MU_CHECK(!cli.given(o), "--%s applies to --to-hf only", o);
    }
    // Check the cheap things before reading gigabytes.
    check_not_a_source(from_hf, model, out, to_hf, tokenizer_from);
    HfExportOptions hf_opts;
    if (!to_hf.empty()) {
      hf_opts.max_shard_bytes = parse_byte_size(max_shard, "--max-shard-size");
      hf_opts.tokenizer_from = tokenizer_from;
      hf_opts.force = force;
      if (!dtype.empty()) hf_opts.dtype = parse_dtype(dtype, true);
      hf_export_precheck(to_hf, hf_opts);
    }
    const DType ckpt_dtype = out.empty() || dtype.empty() ? DType::F32 : parse_dtype(dtype, false);

    HostModel m = from_hf.empty() ? load_checkpoint(model) : import_hf_dir(from_hf);
    std::fprintf(stderr, "mu-convert: %s\n", m.cfg.summary().c_str());
    if (!out.empty()) {
      save_checkpoint(out, m.cfg, m.w, ckpt_dtype);
      std::fprintf(stderr, "mu-convert: wrote %s (%s)\n", out.c_str(), dtype_name(ckpt_dtype));
      return 0;
    }
    if (dtype.empty() && !dtype_from_torch_name(m.cfg.torch_dtype, &hf_opts.dtype)) {
      std::fprintf(stderr, "mu-convert: config torch_dtype '%s' is not float32/bfloat16/float16: writing float32\n",
                   m.cfg.torch_dtype.c_str());
      hf_opts.dtype = DType::F32;
    }
    HfExportResult r = export_hf_dir(to_hf, m.cfg, m.w, hf_opts);
    std::fprintf(stderr, "mu-convert: wrote %s: %s, %.1f MB of weights in %d file(s), torch_dtype %s\n",
                 to_hf.c_str(), r.shards == 1 ? "model.safetensors" : "sharded", r.total_bytes / 1e6, r.shards,
                 torch_dtype_name(hf_opts.dtype));
    for (const std::string& f : r.files) std::fprintf(stderr, "  %s\n", f.c_str());
    return 0;
  });
}
