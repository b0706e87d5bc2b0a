"""Greedy decoding for the RNN encoder-decoder: the host-side loop, one step at a time.
docs: derivations/rnn_attention.md

The same arguments, checks and output as npformer.model.decoding.greedy_decode for the
Transformer: a host int array (B, L), the tokens after BOS, EOS kept, pad_id after it, and
pad_id never chosen as a word.
"""

import numpy as np

from npformer.backend import to_device, to_numpy
from npformer.errors import ConfigError
from npformer.layers.softmax import MASK_FILL
from npformer.model.decoding import _check_args


def greedy_decode(model, src, max_len=20, bos_id=1, eos_id=2, hard=False):
    """hard=True replaces the attention's softmax by a one-hot argmax (a model with attention only).
    The attention weights of every step are left in model.weights (B, L, S) for plots."""
    if hard and not hasattr(model, "attention"):
        raise ConfigError("hard attention needs a model with attention (--model rnn-attention); "
                          "this one reads a single context vector.")
    max_len = _check_args(model, max_len, bos_id, eos_id)
    xp, pad = model.xp, model.cfg.pad_id
    src = model.check_tokens(src, model.cfg.src_vocab, "source ids")
    hs, src_keep = model.encode(src)                             # (B,S,Hd)
    B = src.shape[0]
    s = hs[:, -1]                                                # (B,Hd)  s_0 = h_S
    last = np.full(B, bos_id)                                    # (B,)
    done = np.zeros(B, dtype=bool)                               # (B,)
    steps, weights = [], []
    was_hard = getattr(model, "attention", None) is not None and model.attention.hard
    if hard:
        model.attention.hard = True                              # argmax weights, for this call only
    try:
        for _ in range(max_len):
            y_t = model.tgt_embed.forward(to_device(last[:, None], xp))[:, 0]  # (B,E)
            out, s, A, _ = model._step(y_t, s, hs, src_keep, None)
            logits = model.generator.forward(out)                # (B,V)
            logits[:, pad] = MASK_FILL                           # pad is never a word
            weights.append(A)
            last = to_numpy(logits.argmax(axis=-1))              # (B,)  to the host to test for EOS
            last[done] = pad                                     # finished rows only pad
            steps.append(last)
            done |= last == eos_id
            if done.all():
                break
    finally:
        if hasattr(model, "attention"):
            model.attention.hard = was_hard                      # as it was: hard_attention() may have set it
    if weights[0] is not None:
        model.weights = xp.stack(weights, axis=1)                # (B,L,S)
    return np.stack(steps, axis=1)                               # (B,L)
