"""Greedy decoding and beam search, batched, with each decoder layer's keys and values cached
across steps so step t costs one position, not a recomputation of the whole prefix.
docs: derivations/model.md"""

import numpy as np

from npformer.backend import to_device, to_numpy


def _finish(tokens, eos_id, pad_id):
    """(B, L) host tokens -> everything after each row's first EOS set to pad."""
    out = tokens.copy()
    for row in out:
        hits = np.flatnonzero(row == eos_id)
        if hits.size:
            row[hits[0] + 1:] = pad_id
    return out


def greedy_decode(model, src, max_len=20, bos_id=1, eos_id=2):
    """At each step take the most probable next token. Returns host int array (B, L), L <= max_len:
    the tokens after BOS, EOS kept, pad_id after it."""
    xp, pad = model.xp, model.cfg.pad_id
    if max_len > model.cfg.max_len:
        max_len = model.cfg.max_len
    src = model.check_tokens(src, model.cfg.src_vocab, "source ids")
    memory, src_keep = model.encode(src)                        # (B,S,D)
    B = src.shape[0]
    caches = [{} for _ in model.decoder.layers]
    token = to_device(np.full((B, 1), bos_id), xp)               # (B,1)
    done = np.zeros(B, dtype=bool)
    steps = []
    for t in range(max_len):
        logits = model.decode(token, memory, src_keep, caches=caches, start=t)  # (B,1,V)
        nxt = to_numpy(logits[:, -1].argmax(axis=-1))            # (B,)  back to the host to test for EOS
        nxt[done] = pad
        steps.append(nxt)
        done |= nxt == eos_id
        if done.all():
            break
        token = to_device(nxt[:, None], xp)                      # (B,1)
    return _finish(np.stack(steps, axis=1), eos_id, pad)


def beam_search(model, src, beam_size=4, max_len=20, bos_id=1, eos_id=2, length_penalty=0.6):
    raise NotImplementedError("beam search is not written yet")
