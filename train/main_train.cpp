// mu-train: train or fine-tune a Llama (see --help; README "Quickstart").
#include "core/cli.h"
#include "train/options.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  return mu::run_main("mu-train", [&] {
    mu::TrainOptions o;
    mu::Cli cli("mu-train", "Train or fine-tune a Llama-family model with AdamW or Muon.");
    mu::register_options(cli, o);
    cli.epilog(
        "examples:\n"
        "  mu-train --config demo --data 'data/brown_train_*.bin' --val-data 'data/brown_val_*.bin' \\\n"
        "           --steps 600 --batch-size 16 --seq-len 128 --lr 3e-3 --out runs/demo --log runs/demo/metrics.jsonl\n"
        "  mu-train --out runs/demo --resume ... (same options): continue from the latest checkpoint");
    if (!cli.parse(argc, argv)) return 0;
    return mu::run_training(o);
  });
}
