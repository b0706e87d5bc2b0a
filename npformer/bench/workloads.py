"""The five benchmark workloads, their batches, and the matrix-product work each step does.

Every workload is a training step (forward, loss, backward, Adam update) in float32 on
batches of the reverse task: the source is a row of random symbols, the target the same
symbols reversed and closed by EOS. Token ids: 0 pad, 1 BOS, 2 EOS, 3.. symbols.
"""

from dataclasses import dataclass

import numpy as np

PAD, BOS, EOS = 0, 1, 2


@dataclass(frozen=True)
class Workload:
    name: str
    d_model: int
    n_heads: int
    d_ff: int
    n_layers: int
    batch: int
    min_len: int
    max_len: int
    dropout: float
    vocab: int = 13
    norm: str = "post"

    def config(self):
        """The npformer TransformerConfig as a dict (the PyTorch reference reads the same one)."""
        return dict(src_vocab=self.vocab, tgt_vocab=self.vocab, d_model=self.d_model,
                    n_heads=self.n_heads, d_ff=self.d_ff, n_layers=self.n_layers,
                    dropout=self.dropout, max_len=max(64, self.max_len + 1), norm=self.norm)

    def describe(self):
        lengths = f"{self.max_len}" if self.min_len == self.max_len else f"{self.min_len}..{self.max_len}"
        return (f"D={self.d_model} H={self.n_heads} F={self.d_ff} N={self.n_layers}+{self.n_layers} "
                f"B={self.batch} L={lengths} p={self.dropout:g}")


WORKLOADS = [
    Workload("reference", 128, 4, 512, 2, batch=64, min_len=1, max_len=16, dropout=0.1),
    Workload("reference-nodrop", 128, 4, 512, 2, batch=64, min_len=1, max_len=16, dropout=0.0),
    Workload("medium", 256, 8, 1024, 2, batch=32, min_len=64, max_len=64, dropout=0.0),
    Workload("large", 512, 8, 2048, 2, batch=16, min_len=128, max_len=128, dropout=0.0),
    Workload("deep", 512, 8, 2048, 6, batch=32, min_len=32, max_len=32, dropout=0.1),
]
BY_NAME = {w.name: w for w in WORKLOADS}


def reverse_batch(rng, w):
    """One batch of the reverse task on the host: src (B,S), tgt_in (B,T), tgt_out (B,T), int64.

    Rows have lengths drawn from min_len..max_len and are padded to the batch's longest, so
    S = the longest row and T = S + 1 (BOS in front of tgt_in, EOS behind tgt_out)."""
    lengths = rng.integers(w.min_len, w.max_len + 1, size=w.batch)     # (B,)
    S = int(lengths.max())
    src = np.full((w.batch, S), PAD, dtype=np.int64)                    # (B,S)
    tgt_in = np.full((w.batch, S + 1), PAD, dtype=np.int64)             # (B,T)
    tgt_out = np.full((w.batch, S + 1), PAD, dtype=np.int64)            # (B,T)
    for b, n in enumerate(lengths):
        row = rng.integers(EOS + 1, w.vocab, size=n)
        src[b, :n] = row
        tgt_in[b, 0], tgt_in[b, 1:n + 1] = BOS, row[::-1]
        tgt_out[b, :n], tgt_out[b, n] = row[::-1], EOS
    return src, tgt_in, tgt_out


def batches(w, n, seed=0):
    """n host batches of workload w, the same for every framework given the same seed."""
    rng = np.random.default_rng(seed)
    return [reverse_batch(rng, w) for _ in range(n)]


def step_flops(w, S, T):
    """Floating-point operations of the matrix products in one training step with source
    length S and target length T (padding included: it is computed, so it counts).

    A product (m,k)@(k,n) is 2mkn. Backward does two products for every forward one (the
    gradient of each operand), so a step is 3x the forward. Elementwise work is left out,
    as is usual for a FLOP/s figure compared against the matrix-multiply rate."""
    B, D, F, V, N = w.batch, w.d_model, w.d_ff, w.vocab, w.n_layers
    enc_layer = B * S * (4 * 2 * D * D          # Q, K, V, output projections
                         + 2 * 2 * S * D        # scores Q K^T and weights @ V, all heads
                         + 2 * 2 * D * F)       # the two feed-forward linears
    dec_layer = (B * T * (4 * 2 * D * D + 2 * 2 * T * D + 2 * 2 * D * F)   # self-attention, FFN
                 + B * T * 2 * 2 * D * D + B * S * 2 * 2 * D * D          # cross: Q, out; K, V
                 + B * T * 2 * 2 * S * D)                                 # cross scores, weights @ V
    generator = B * T * 2 * D * V
    return 3 * (N * enc_layer + N * dec_layer + generator)
