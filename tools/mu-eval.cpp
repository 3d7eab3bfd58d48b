// mu-eval: evaluate an engine checkpoint.
//   --tokens: forward (and backward) dumps on a token batch, in Hugging Face tensor names,
//             so results compare directly with HF/PyTorch;
//   --data:   mean loss and token accuracy over a data set;
//   --sample: generate text from a prompt (byte tokenizer).
#include <cstdio>

#include "core/cli.h"
#include "core/error.h"
#include "tools/lib_eval.h"

using namespace mu;

int main(int argc, char** argv) {
  return run_main("mu-eval", [&] {
    std::string model, tokens, out, data, device = "cpu";
    bool grads = false, params = false, sample = false;
    int batch_size = 8, seq_len = 256;
    int64_t max_batches = 0;
    SampleOptions so;
    so.prompt = "The ";
    int64_t seed = 1;
    Cli cli("mu-eval", "Evaluate an llm.mu checkpoint: dump logits/loss/gradients, score a data set, or sample text.");
    cli.add_string("model", &model, "FILE", "engine checkpoint (.safetensors)");
    cli.add_string("device", &device, "cpu|cuda", "backend to run on");
    cli.section("dump (--tokens)");
    cli.add_string("tokens", &tokens, "FILE", "safetensors with an integer tensor 'tokens' of shape (B, T+1)");
    cli.add_string("out", &out, "FILE", "output safetensors: logits (B,T,V) F32, loss F32 scalar");
    cli.add_flag("grads", &grads, "also write grad.<HF name> for every parameter (gradient of the mean loss)");
    cli.add_flag("params", &params, "also write every parameter under its HF name");
    cli.section("data set (--data)");
    cli.add_string("data", &data, "GLOB", "token shards: report mean loss and token accuracy");
    cli.add_int("batch-size", &batch_size, "sequences per batch");
    cli.add_int("seq-len", &seq_len, "tokens per sequence");
    cli.add_int64("max-batches", &max_batches, "stop after N batches (0: the whole data set)");
    cli.section("sampling (--sample)");
    cli.add_flag("sample", &sample, "generate text from --prompt (byte tokenizer: models with vocab_size 256)");
    cli.add_string("prompt", &so.prompt, "TEXT", "text to continue");
    cli.add_int("max-new-tokens", &so.max_new_tokens, "tokens to generate");
    cli.add_float("temperature", &so.temperature, "softmax temperature (0: greedy)");
    cli.add_int("top-k", &so.top_k, "sample among the k most likely tokens (0: all)");
    cli.add_int("context", &so.context, "context window in tokens (0: min(max_position_embeddings, 1024))");
    cli.add_int64("seed", &seed, "sampling seed");
    if (!cli.parse(argc, argv)) return 0;
    MU_CHECK(!model.empty(), "--model is required (see --help)");
    const int modes = !tokens.empty() + !data.empty() + sample;
    MU_CHECK(modes == 1, "give exactly one of --tokens, --data or --sample (see --help)");
    const Device dev = parse_device(device);
    if (!tokens.empty()) {
      MU_CHECK(!out.empty(), "--tokens needs --out");
      eval_dump(model, tokens, out, grads, params, dev);
    } else if (!data.empty()) {
      MU_CHECK(batch_size > 0 && seq_len > 0, "--batch-size and --seq-len must be positive");
      MU_CHECK(max_batches >= 0, "--max-batches must be >= 0 (0: the whole data set), got %lld",
               static_cast<long long>(max_batches));
      DataEvalResult r = eval_data(model, data, batch_size, seq_len, max_batches, dev);
      std::printf("loss %.4f nats/token | accuracy %.4f | %lld tokens\n", r.loss, r.accuracy,
                  static_cast<long long>(r.tokens));
    } else {
      so.seed = static_cast<uint64_t>(seed);
      sample_text(model, so, dev);  // checks the options and loads the model before printing the prompt
    }
    return 0;
  });
}
