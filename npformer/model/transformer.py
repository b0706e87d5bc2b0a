"""The Transformer of Figure 1: embeddings, encoder, decoder, output projection.
docs: derivations/model.md, architecture.md

    memory = Encoder(Dropout(sqrt(D) * SrcEmbed(src) + PE))
    y      = Decoder(Dropout(sqrt(D) * TgtEmbed(tgt_in) + PE), memory)
    logits = y Wg + bg                                            (softmax lives in the loss)

backward() calls the same pieces in exactly the reverse order.
"""

import math

import numpy as np

from npformer.backend import default_rng, get_backend, to_device
from npformer.errors import InputError
from npformer.layers import (Dropout, Embedding, Layer, LearnedPositionalEncoding, Linear,
                             SinusoidalPositionalEncoding, check_ids)
from npformer.masks import padding_keep, target_keep
from npformer.model.config import TransformerConfig, check_float_dtype
from npformer.model.decoder import Decoder
from npformer.model.encoder import Encoder


class Transformer(Layer):
    """The encoder-decoder model. forward(src, tgt_in) -> logits; backward(dlogits).

    src (B,S) and tgt_in (B,T) are integer token ids, on the host or the backend.
    Parameters are created on the host from `seed`, so a seed gives the same model on
    every backend; dropout masks come from a backend generator seeded from the same seed.
    """

    def __init__(self, cfg, seed=0, dtype="float32", backend=None):
        xp = get_backend(backend)
        super().__init__(xp, check_float_dtype(dtype))
        self.cfg = cfg = TransformerConfig.checked(cfg)  # a dict (a checkpoint header) or a config
        self.seed = seed
        D, H, F, N, p = cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers, cfg.dropout
        rng = np.random.default_rng(seed)                        # host generator: initial parameters
        self.drop_rng = default_rng(xp, seed + 1)                # backend generator: dropout masks
        common = dict(xp=xp, dtype=dtype)

        self.src_embed = Embedding(cfg.src_vocab, D, rng, **common)
        self.tgt_embed = Embedding(cfg.tgt_vocab, D, rng, **common)
        if cfg.positional == "learned":
            self.src_pos = LearnedPositionalEncoding(cfg.max_len, D, rng, **common)
            self.tgt_pos = LearnedPositionalEncoding(cfg.max_len, D, rng, **common)
        else:
            self.src_pos = SinusoidalPositionalEncoding(cfg.max_len, D, **common)
            self.tgt_pos = SinusoidalPositionalEncoding(cfg.max_len, D, **common)
        self.src_drop = Dropout(p, self.drop_rng, **common)
        self.tgt_drop = Dropout(p, self.drop_rng, **common)
        self.encoder = Encoder(N, D, H, F, p, rng, self.drop_rng, cfg.norm, cfg.activation, **common,
                               score=cfg.attention_score)
        self.decoder = Decoder(N, D, H, F, p, rng, self.drop_rng, cfg.norm, cfg.activation, **common,
                               score=cfg.attention_score)
        self.generator = Linear(D, cfg.tgt_vocab, rng, **common)
        if cfg.tie_embeddings:
            # Section 3.4: one (V,D) matrix serves both embeddings and, transposed, the output
            # projection. Views share memory, so all three uses add into one gradient buffer.
            self.tgt_embed.borrow_param("W", self.src_embed, "W")
            self.generator.borrow_param("W", self.src_embed, "W", transpose=True)  # (D,V) view of the (V,D) matrix
        self.emb_scale = math.sqrt(D)
        self.pack()                                              # every parameter into one flat array (layers/arena.py)

    # ------------------------------------------------------------------ inputs

    def check_tokens(self, ids, vocab, what):
        """Validate ids on the host (shape, integer, range, length) and move them to the backend."""
        host = check_ids(ids, vocab, what)
        if host.ndim != 2:
            raise InputError(f"{what} must be a 2-D batch (B, length), got shape {host.shape}.")
        if 0 in host.shape:
            raise InputError(f"{what} are empty (shape {host.shape}).")
        if host.shape[1] > self.cfg.max_len:
            raise InputError(f"{what} have length {host.shape[1]}, longer than max_len={self.cfg.max_len}.")
        return to_device(host, self.xp)

    def _check_pair(self, src, tgt_in):
        src = self.check_tokens(src, self.cfg.src_vocab, "source ids")
        tgt = self.check_tokens(tgt_in, self.cfg.tgt_vocab, "target ids")
        if src.shape[0] != tgt.shape[0]:
            raise InputError(f"source batch has {src.shape[0]} rows but target batch has {tgt.shape[0]}.")
        return src, tgt

    # ------------------------------------------------------------------ forward

    def encode(self, src, training=False):
        """src (B,S) ids already through check_tokens -> memory (B,S,D), src_keep (B,1,1,S)."""
        src_keep = padding_keep(src, self.cfg.pad_id)            # (B,1,1,S)
        x = self.src_embed.forward(src, checked=True) * self.emb_scale  # (B,S,D)  (TF-1)
        x = self.src_drop.forward(self.src_pos.forward(x), training)  # (B,S,D)  (TF-2)
        return self.encoder.forward(x, src_keep, training), src_keep  # (B,S,D)  (TF-3)

    def decode(self, tgt, memory, src_keep, training=False, caches=None, start=0):
        """tgt (B,T) device ids -> logits (B,T,V). With caches (inference), tgt holds only the
        new positions, starting at `start`, and earlier keys and values come from the caches."""
        if caches is None:
            tgt_keep = target_keep(tgt, self.cfg.pad_id)         # (B,1,T,T)
        else:                                                    # query t is position start+t: keys 0 .. start+t
            T = tgt.shape[1]
            tgt_keep = self.xp.tri(T, start + T, start, dtype=bool)[None, None]  # (1,1,T,start+T)  causal
        y = self.tgt_embed.forward(tgt, checked=True) * self.emb_scale  # (B,T,D)  (TF-1)
        y = self.tgt_drop.forward(self.tgt_pos.forward(y, start), training)  # (B,T,D)  (TF-2)
        y = self.decoder.forward(y, memory, tgt_keep, src_keep, training, caches)  # (B,T,D)  (TF-4)
        return self.generator.forward(y)                         # (B,T,V)  (TF-5)

    def forward(self, src, tgt_in, training=True):
        """src (B,S), tgt_in (B,T) integer ids -> logits (B,T,V)."""
        src, tgt = self._check_pair(src, tgt_in)
        memory, src_keep = self.encode(src, training)
        return self.decode(tgt, memory, src_keep, training)

    # ------------------------------------------------------------------ backward

    def backward(self, dlogits):                                 # dlogits: (B,T,V)
        """Reverse of forward: generator, decoder, target embedding, then encoder, source embedding.
        Parameter gradients are added into gradients(); call zero_grad() before."""
        x = self.generator.cache                                 # (B,T,D)  the last forward's, if any
        if x is None:
            raise InputError("backward needs the caches of a forward pass: call forward first.")
        if getattr(dlogits, "shape", None) != (*x.shape[:-1], self.cfg.tgt_vocab):
            raise InputError(f"dlogits must have the logits' shape {(*x.shape[:-1], self.cfg.tgt_vocab)}, "
                             f"got {getattr(dlogits, 'shape', type(dlogits).__name__)}.")
        dy = self.generator.backward(dlogits)                    # (B,T,D)  (TF-6)
        dy, dmemory = self.decoder.backward(dy)                  # (B,T,D), (B,S,D)  (TF-7)
        dy = self.tgt_pos.backward(self.tgt_drop.backward(dy))   # (B,T,D)
        self.tgt_embed.backward(dy * self.emb_scale)             # fwd: sqrt(D) * W[ids]  (TF-8)
        dx = self.encoder.backward(dmemory)                      # (B,S,D)  memory's gradient, summed over decoder layers  (TF-9)
        dx = self.src_pos.backward(self.src_drop.backward(dx))   # (B,S,D)
        self.src_embed.backward(dx * self.emb_scale)             # (TF-8)

    # ------------------------------------------------------------------ decoding and files

    def greedy_decode(self, src, max_len=20, bos_id=1, eos_id=2):
        """Batched greedy decoding with cached keys and values; host int array (B, L)."""
        from npformer.model.decoding import greedy_decode
        return greedy_decode(self, src, max_len, bos_id, eos_id)

    def beam_search(self, src, beam_size=4, max_len=20, bos_id=1, eos_id=2, length_penalty=0.6, return_scores=False):
        """Batched beam search; host int array (B, L), the best beam per row (and its score)."""
        from npformer.model.decoding import beam_search
        return beam_search(self, src, beam_size, max_len, bos_id, eos_id, length_penalty, return_scores)

    def save(self, path, extra=None, meta=None):
        """Write the parameters and config to `path` (.npz), atomically."""
        from npformer.model.checkpoint import save
        save(self, path, extra, meta)
