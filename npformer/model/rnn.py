"""The RNN encoder-decoder that the Transformer replaced, with and without attention.
docs: derivations/gru.md, derivations/rnn_attention.md

    encoder:  h_s = GRU(E x_s, h_{s-1}),  s = 1..S                      (padding carries h through)
    no attention (Cho et al. 2014): every step reads the one context vector c = h_S
    Bahdanau et al. 2015:            c_t = sum_s a_ts h_s,  a_t = softmax_s(w . tanh(s_{t-1} W_q + h_s W_k))
    decoder:  s_t = GRU([E y_{t-1}; c_t], s_{t-1}),  s_0 = h_S
    logits_t = [s_t; c_t] W_g + b_g

Same token scheme, batching, loss and public interface as npformer.model.transformer.Transformer:
forward(src, tgt_in) -> logits (B,T,V), backward(dlogits), parameters(), gradients(),
zero_grad(), greedy_decode(), save(). Training and decoding run the same step function, one
target position at a time: the recurrence cannot be parallelised over positions the way
attention can, which is the point of comparing the two.

Shapes: Hd the hidden width, E the embedding width, A the attention's hidden width.
"""

from dataclasses import dataclass

import numpy as np

from npformer.backend import default_rng, get_backend, to_device
from npformer.errors import ConfigError, InputError
from npformer.layers import Embedding, Layer, Linear, check_ids
from npformer.layers.gru import GRU
from npformer.layers.scores import AdditiveAttention
from npformer.model.config import DictConfig

ATTENTIONS = (None, "bahdanau")


@dataclass
class RNNConfig(DictConfig):
    src_vocab: int
    tgt_vocab: int
    d_embed: int = 64                 # E
    d_hidden: int = 128               # Hd
    attention: str = None             # None: one context vector; "bahdanau": one per output step
    d_attn: int = 64                  # A, the additive score's hidden width
    max_len: int = 512                # longest sequence accepted (the RNN itself has no limit)
    pad_id: int = 0

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name in ("src_vocab", "tgt_vocab", "d_embed", "d_hidden", "d_attn", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention must be None or 'bahdanau', got {self.attention!r}.")
        if not 0 <= self.pad_id < min(self.src_vocab, self.tgt_vocab):
            raise ConfigError(f"pad_id {self.pad_id} is outside the vocabulary.")



class RNNSeq2Seq(Layer):
    """A GRU encoder-decoder; cfg.attention = None or "bahdanau".

    src (B,S) and tgt_in (B,T) are integer ids, on the host or the backend. Parameters come
    from a host generator seeded with `seed`, so a seed gives the same model on every backend.
    """

    kind = "rnn"                      # the checkpoint header's "model"

    def __init__(self, cfg, seed=0, dtype="float32", backend=None):
        xp = get_backend(backend)
        super().__init__(xp, dtype)
        self.cfg = cfg = RNNConfig.checked(cfg)  # a dict (a checkpoint header) or a config
        self.seed = seed
        E, Hd = cfg.d_embed, cfg.d_hidden
        rng = np.random.default_rng(seed)
        self.drop_rng = default_rng(xp, seed + 1)                # unused (no dropout); kept for the trainer's resume
        common = dict(xp=xp, dtype=dtype)
        self.src_embed = Embedding(cfg.src_vocab, E, rng, **common)
        self.tgt_embed = Embedding(cfg.tgt_vocab, E, rng, **common)
        self.encoder = GRU(E, Hd, rng, **common)
        if cfg.attention == "bahdanau":
            # `attention` is the name hard_attention() looks for, as in MultiHeadAttention
            self.attention = AdditiveAttention(Hd, Hd, cfg.d_attn, rng, **common)
        self.decoder = GRU(E + Hd, Hd, rng, **common)             # input: [embedded y_{t-1}; c_t]
        self.generator = Linear(2 * Hd, cfg.tgt_vocab, rng, **common)  # input: [s_t; c_t]
        self.weights = None                                      # last attention weights (B,T,S), for plots
        self.pack()                                              # every parameter into one flat array (layers/arena.py)

    # ------------------------------------------------------------------ inputs

    def check_tokens(self, ids, vocab, what):
        """Validate ids on the host (shape, integer, range, length) and move them to the backend."""
        host = check_ids(ids, vocab, what)
        if host.ndim != 2:
            raise InputError(f"{what} must be a 2-D batch (B, length), got shape {host.shape}.")
        if host.shape[1] == 0:
            raise InputError(f"{what} are empty (length 0).")
        if host.shape[1] > self.cfg.max_len:
            raise InputError(f"{what} have length {host.shape[1]}, longer than max_len={self.cfg.max_len}.")
        return to_device(host, self.xp)

    # ------------------------------------------------------------------ forward

    def encode(self, src):
        """src (B,S) device ids -> encoder states hs (B,S,Hd), src_keep (B,S)."""
        src_keep = src != self.cfg.pad_id                        # (B,S)
        x = self.src_embed.forward(src)                          # (B,S,E)
        hs = self.encoder.forward(x, None, src_keep)             # (B,S,Hd)  (RNNA-1)
        return hs, src_keep

    def _context(self, s, hs, src_keep):
        """The context vector for the next step: h_S without attention, else attention over hs
        (softmax weights, or argmax ones while self.attention.hard is set, for decoding)."""
        if not hasattr(self, "attention"):
            return hs[:, -1], None                               # (B,Hd)  the last state: padding carried it  (RNNA-2)
        c, A = self.attention.forward(s[:, None, None, :], hs[:, None], hs[:, None],
                                      src_keep[:, None, None, :])  # (B,1,1,Hd), (B,1,1,S)  (RNNA-3)
        return c[:, 0, 0], A[:, 0, 0]                            # (B,Hd), (B,S)

    def _step(self, y_t, s, hs, src_keep, tgt_keep_t):
        """One decoder step: previous token's embedding y_t (B,E), state s (B,Hd) ->
        (output [s_t; c_t] (B,2Hd), s_t, attention weights or None, caches for backward)."""
        xp = self.xp
        c, A = self._context(s, hs, src_keep)                    # (B,Hd)
        att_cache = self.attention.cache if hasattr(self, "attention") else None
        s, dec_cache = self.decoder.step(xp.concatenate([y_t, c], axis=1), s, tgt_keep_t)  # (B,Hd)  (RNNA-4)
        return xp.concatenate([s, c], axis=1), s, A, (att_cache, dec_cache)  # (B,2Hd)

    def forward(self, src, tgt_in, training=True):
        """src (B,S), tgt_in (B,T) integer ids -> logits (B,T,V). (No dropout: `training` is
        accepted for the Transformer's interface and changes nothing.)"""
        src = self.check_tokens(src, self.cfg.src_vocab, "source ids")
        tgt = self.check_tokens(tgt_in, self.cfg.tgt_vocab, "target ids")
        if src.shape[0] != tgt.shape[0]:
            raise InputError(f"source batch has {src.shape[0]} rows but target batch has {tgt.shape[0]}.")
        hs, src_keep = self.encode(src)                          # (B,S,Hd), (B,S)
        y = self.tgt_embed.forward(tgt)                          # (B,T,E)
        tgt_keep = tgt != self.cfg.pad_id                        # (B,T)
        s = hs[:, -1]                                            # (B,Hd)  s_0 = h_S
        outs, weights, caches = [], [], []
        for t in range(tgt.shape[1]):                            # sequential: s_t needs s_{t-1}
            out, s, A, cache = self._step(y[:, t], s, hs, src_keep, tgt_keep[:, t])
            outs.append(out)
            weights.append(A)
            caches.append(cache)
        self.cache = (hs.shape, caches)
        if weights[0] is not None:
            self.weights = self.xp.stack(weights, axis=1)        # (B,T,S)
        return self.generator.forward(self.xp.stack(outs, axis=1))  # (B,T,V)  (RNNA-5)

    # ------------------------------------------------------------------ backward

    def backward(self, dlogits):                                 # dlogits: (B,T,V)
        """Reverse of forward: generator, the decoder steps from last to first (through time),
        then the encoder through time. Parameter gradients are added; call zero_grad() before."""
        xp = self.xp
        (B, S, Hd), caches = self.cache
        E = self.cfg.d_embed
        dout = self.generator.backward(dlogits)                  # (B,T,2Hd)  (RNNA-6)
        dhs = xp.zeros((B, S, Hd), dtype=dout.dtype)             # (B,S,Hd)  every step reads hs: summed
        dy = xp.zeros((B, len(caches), E), dtype=dout.dtype)     # (B,T,E)
        ds = xp.zeros((B, Hd), dtype=dout.dtype)                 # (B,Hd)  from step t+1 (none after the last)
        for t in reversed(range(len(caches))):
            att_cache, dec_cache = caches[t]
            ds = ds + dout[:, t, :Hd]                            # (B,Hd)  s_t: to the output and to step t+1  (RNNA-7)
            dc = dout[:, t, Hd:]                                 # (B,Hd)  c_t: to the output ...
            dxin, ds = self.decoder.step_backward(ds, dec_cache)  # (B,E+Hd), (B,Hd)
            dy[:, t] = dxin[:, :E]                               # (B,E)
            dc = dc + dxin[:, E:]                                # (B,Hd)  ... and to the decoder input  (RNNA-7)
            if att_cache is None:
                dhs[:, -1] += dc                                 # (B,Hd)  c = h_S at every step  (RNNA-8)
            else:
                self.attention.cache = att_cache                 # this step's forward, restored
                dq, dk, dv = self.attention.backward(dc[:, None, None, :])  # (B,1,1,Hd), (B,1,S,Hd) x2
                dhs += dk[:, 0] + dv[:, 0]                       # (B,S,Hd)  hs are keys and values  (RNNA-9)
                ds = ds + dq[:, 0, 0]                            # (B,Hd)  s_{t-1} was the query  (RNNA-9)
        dhs[:, -1] += ds                                         # (B,Hd)  s_0 = h_S  (RNNA-10)
        self.tgt_embed.backward(dy)
        dx, _ = self.encoder.backward(dhs)                       # (B,S,E)  through time  (RNNA-11)
        self.src_embed.backward(dx)

    # ------------------------------------------------------------------ decoding and files

    def greedy_decode(self, src, max_len=20, bos_id=1, eos_id=2, hard=False):
        """Batched greedy decoding, one step at a time; host int array (B, L), L <= max_len:
        the tokens after BOS, EOS kept, pad_id after it. hard=True: argmax attention weights."""
        from npformer.model.rnn_decoding import greedy_decode
        return greedy_decode(self, src, max_len, bos_id, eos_id, hard)

    def beam_search(self, src, beam_size=4, max_len=20, bos_id=1, eos_id=2, length_penalty=0.6):
        """Not written for the RNN: its decoder state would have to be reordered with the beams."""
        raise NotImplementedError("beam search is written for the Transformer only; decode the RNN greedily.")

    def save(self, path, extra=None, meta=None):
        """Write the parameters and config to `path` (.npz), atomically."""
        from npformer.model.checkpoint import save
        save(self, path, extra, meta)
