"""Train a Transformer to reverse sequences of symbols, then decode a few.

    python examples/train_reverse.py                     # NumPy, about 2000 steps
    python examples/train_reverse.py --backend cupy      # the same script on a GPU
    python examples/train_reverse.py --steps 300 --out runs/example

The loop is written out so each piece of the library shows: a task that makes padded
batches, the model's forward and hand-written backward, the loss, clipping and Adam.
`npformer train` runs the same recipe with evaluation, checkpoints and resume added.
"""

import argparse

import numpy as np

import npformer as nf
from npformer.train import Adam, Task, clip_grad_norm, evaluate, heldout, learning_rate, make_batch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--backend", default="numpy", help="numpy, cupy or strict")
parser.add_argument("--out", default=None, help="save the trained model here (a directory)")
args = parser.parse_args()

task = Task("reverse", n_symbols=10, min_len=1, max_len=16)     # PAD 0, BOS 1, EOS 2, symbols 3..12
cfg = nf.TransformerConfig(src_vocab=task.vocab, tgt_vocab=task.vocab, d_model=128, n_heads=4, d_ff=512,
                           n_layers=2, dropout=0.1)
model = nf.Transformer(cfg, seed=0, backend=args.backend)
adam = Adam(model.arena, betas=(0.9, 0.98), eps=1e-9)         # every parameter in one flat array
rng = np.random.default_rng(0)                                  # batches are made on the host

for step in range(1, args.steps + 1):
    batch = make_batch(task, task.sample(rng, 64))              # src (B,S), tgt_in = BOS+y, tgt_out = y+EOS
    logits = model.forward(batch.src, batch.tgt_in)             # (B,T,V)
    loss, dlogits = nf.cross_entropy(logits, batch.tgt_out, pad_id=0)
    model.zero_grad()
    model.backward(dlogits)
    clip_grad_norm(model.arena.grads, 1.0)                      # all the gradients, one flat array
    lr = learning_rate(step, "paper", 1e-3, warmup=200, d_model=128)  # warm up to 1e-3, then 1/sqrt(step)
    adam.step(lr)
    if step % 100 == 0 or step == args.steps:
        print(f"step {step:5d}  loss {loss:.4f}")

sources = heldout(task, 200)
scores = evaluate(model, task, sources)
print(f"held-out exact match {scores['exact_match']:.3f}, token accuracy {scores['token_accuracy']:.3f}")
for src, out in zip(sources[:3], scores["produced"][:3]):
    print(f"  {src.tolist()}  ->  {out}")

if args.out:
    import os
    model.save(os.path.join(args.out, "model.npz"))
    print(f"saved {os.path.join(args.out, 'model.npz')}")
