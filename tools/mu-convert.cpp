// mu-convert: Hugging Face Llama directory -> engine checkpoint.
#include <cstdio>

#include "core/cli.h"
#include "core/fileio.h"
#include "model/checkpoint.h"
#include "model/hf_import.h"

using namespace mu;

int main(int argc, char** argv) {
  return run_main("mu-convert", [&] {
    std::string from_hf, out, dtype = "f32";
    Cli cli("mu-convert", "Convert a Hugging Face Llama checkpoint to an llm.mu checkpoint.");
    cli.add_string("from-hf", &from_hf, "DIR",
                   "HF model directory: config.json + model.safetensors (or a sharded index)");
    cli.add_string("out", &out, "FILE", "engine checkpoint to write (.safetensors)");
    cli.add_string("dtype", &dtype, "f32|bf16", "dtype stored in the checkpoint");
    cli.epilog("example:\n  mu-convert --from-hf ~/models/SmolLM2-135M --out smollm2.safetensors");
    if (!cli.parse(argc, argv)) return 0;
    MU_CHECK(!from_hf.empty(), "--from-hf is required (see --help)");
    MU_CHECK(!out.empty(), "--out is required (see --help)");
    DType stored;
    if (dtype == "f32") stored = DType::F32;
    else if (dtype == "bf16") stored = DType::BF16;
    else MU_FAIL("--dtype must be f32 or bf16, got '%s'", dtype.c_str());
    HostModel m = import_hf_dir(from_hf);
    std::fprintf(stderr, "mu-convert: %s\n", m.cfg.summary().c_str());
    save_checkpoint(out, m.cfg, m.w, stored);
    std::fprintf(stderr, "mu-convert: wrote %s\n", out.c_str());
    return 0;
  });
}
