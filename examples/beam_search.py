"""Load a trained checkpoint and decode with beam search (and greedy, to compare).

    npformer train --out runs/reverse                 # or: python examples/train_reverse.py --out runs/reverse
    python examples/beam_search.py runs/reverse/model.npz --beam 4
"""

import argparse

import numpy as np

import npformer as nf

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkpoint", nargs="?", default="runs/reverse/model.npz")
parser.add_argument("--beam", type=int, default=4)
parser.add_argument("--backend", default="numpy", help="numpy, cupy or strict")
args = parser.parse_args()

model = nf.load(args.checkpoint, backend=args.backend)
PAD, BOS, EOS = 0, 1, 2
sources = [[3, 4, 5, 6], [12, 11, 7], [9, 3, 3, 8, 10, 4, 5]]
src = np.zeros((len(sources), max(map(len, sources))), dtype=np.int64)  # (B,S) padded with PAD
for i, s in enumerate(sources):
    src[i, :len(s)] = s

greedy = model.greedy_decode(src, max_len=src.shape[1] + 2, bos_id=BOS, eos_id=EOS)  # (B,L) host
beams = model.beam_search(src, beam_size=args.beam, max_len=src.shape[1] + 2, bos_id=BOS, eos_id=EOS)


def until_eos(row):
    row = list(row)
    return [int(t) for t in row[:row.index(EOS)]] if EOS in row else [int(t) for t in row if t != PAD]


for s, g, b in zip(sources, greedy, beams):
    print(f"{s}  greedy {until_eos(g)}  beam-{args.beam} {until_eos(b)}")
