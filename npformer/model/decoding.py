"""Greedy decoding and beam search, batched, with each decoder layer's keys and values cached
across steps so step t costs one position, not a recomputation of the whole prefix.
docs: derivations/model.md

Both return a host int array (B, L): the tokens after BOS, EOS kept, pad_id after it. Neither
ever emits pad_id as a word: in the output it means "after EOS", and in the decoder it would be
a key that full recomputation masks but the cache does not.

Beam search (Wu et al. 2016, "Google's Neural Machine Translation System", section 7) keeps
`beam_size` hypotheses per source row and decodes all B * beam_size of them as one batch; after
each step every layer's self-attention cache is reordered to follow the beams that survived.
A hypothesis ends at EOS and is ranked by its log-probability divided by the length penalty

    lp(n) = ((5 + n) / 6) ** alpha,      n = tokens after BOS, EOS included.

Only an EOS among the best `beam_size` candidates of a step ends a hypothesis, and a row stops
once it holds `beam_size` ended ones (fairseq's rule). With beam_size = 1 that is exactly greedy
decoding: the one live hypothesis takes the most probable token at every step.
"""

import numbers

import numpy as np

from npformer.backend import to_device, to_numpy
from npformer.errors import InputError
from npformer.layers.softmax import MASK_FILL
from npformer.loss import log_softmax

# The log-probability of a beam slot that holds no hypothesis (at the first step every beam of
# a row is the same BOS, so only beam 0 starts live), and of the pad token. Finite, like the
# attention mask, so sums stay comparable; any score below DEAD / 2 is no hypothesis at all.
DEAD = MASK_FILL
MAX_BEAM = 1000
MAX_LENGTH_PENALTY = 10        # GNMT uses 0.6 to 1; a large power of (5 + n) / 6 overflows


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_args(model, max_len, bos_id, eos_id, beam_size=1):
    """Validate the decoding arguments; returns max_len capped at the model's max_len."""
    cfg = model.cfg
    for name, value in (("max_len", max_len), ("beam_size", beam_size)):
        if not _is_int(value) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if beam_size > MAX_BEAM:                                     # memory grows with it: B * beam_size copies
        raise InputError(f"beam_size must be at most {MAX_BEAM:,}, got {beam_size!r}.")
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if not _is_int(value) or not 0 <= value < cfg.tgt_vocab:
            raise InputError(f"{name} {value!r} is outside the target vocabulary 0..{cfg.tgt_vocab - 1}.")
        if value == cfg.pad_id:
            raise InputError(f"{name} {value} equals pad_id, so it could not be told apart from padding.")
    return min(int(max_len), cfg.max_len)                        # positions beyond max_len have no encoding


def _start(model, src, copies):
    """Encode src once and set up the decoder: memory and mask repeated `copies` times per row."""
    xp = model.xp
    src = model.check_tokens(src, model.cfg.src_vocab, "source ids")
    memory, src_keep = model.encode(src)                         # (B,S,D), (B,1,1,S)
    if copies > 1:                                               # row b's beams are rows b*k .. b*k + k-1
        memory = xp.repeat(memory, copies, axis=0)               # (B*k,S,D)
        src_keep = xp.repeat(src_keep, copies, axis=0)           # (B*k,1,1,S)
    caches = [{} for _ in model.decoder.layers]                  # one per layer, filled by the first step
    return src.shape[0], memory, src_keep, caches


def _step_logp(model, last, memory, src_keep, caches, t):
    """Feed each row's newest token (host (N,)) at position t -> log-probabilities (N,V) on the device,
    with pad_id ruled out."""
    token = to_device(last[:, None], model.xp)                   # (N,1)
    logits = model.decode(token, memory, src_keep, caches=caches, start=t)[:, -1]  # (N,V)
    logits[:, model.cfg.pad_id] = MASK_FILL                      # (N,V)  exp underflows to 0: never chosen
    return log_softmax(logits)                                   # (N,V)


def _pack(rows, pad):
    """Host token lists of different lengths -> (B, L) int array, pad_id after each row's end."""
    out = np.full((len(rows), max(len(r) for r in rows)), pad, dtype=np.int64)  # (B,L)
    for b, r in enumerate(rows):
        out[b, :len(r)] = r
    return out


def greedy_decode(model, src, max_len=20, bos_id=1, eos_id=2):
    """At each step take the most probable next token. Returns host int array (B, L), L <= max_len
    (and <= the model's max_len): the tokens after BOS, EOS kept, pad_id after it."""
    max_len = _check_args(model, max_len, bos_id, eos_id)
    pad = model.cfg.pad_id
    B, memory, src_keep, caches = _start(model, src, 1)
    last = np.full(B, bos_id)                                    # (B,)
    done = np.zeros(B, dtype=bool)                               # (B,)
    steps = []
    for t in range(max_len):
        logp = _step_logp(model, last, memory, src_keep, caches, t)  # (B,V)
        last = to_numpy(logp.argmax(axis=-1))                    # (B,)  back to the host to test for EOS
        last[done] = pad                                         # finished rows only pad, and feed pad
        steps.append(last)
        done |= last == eos_id
        if done.all():
            break
    return np.stack(steps, axis=1)                               # (B,L)


def _penalty(n, alpha):
    """GNMT length penalty for a hypothesis of n tokens."""
    return ((5.0 + n) / 6.0) ** alpha


def beam_search(model, src, beam_size=4, max_len=20, bos_id=1, eos_id=2, length_penalty=0.6, return_scores=False):
    """Batched beam search with cached keys and values. Returns host int array (B, L), the best
    hypothesis of each row: the tokens after BOS, EOS kept, pad_id after it; with return_scores,
    also its score (B,): log-probability / lp(length)."""
    max_len = _check_args(model, max_len, bos_id, eos_id, beam_size)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) \
            or not 0 <= length_penalty <= MAX_LENGTH_PENALTY:               # NaN fails too
        raise InputError(f"length_penalty must be a number in [0, {MAX_LENGTH_PENALTY}], got {length_penalty!r}.")
    xp, pad, k = model.xp, model.cfg.pad_id, beam_size
    B, memory, src_keep, caches = _start(model, src, k)
    score = np.full((B, k), DEAD)                                # (B,k)  log-probability of each live hypothesis
    score[:, 0] = 0.0
    tokens = np.zeros((B, k, 0), dtype=np.int64)                 # (B,k,t)  each live hypothesis so far
    ended = [[] for _ in range(B)]                               # per row: (score / lp, tokens) of ended hypotheses
    last = np.full(B * k, bos_id)                                # (B*k,)
    for t in range(max_len):
        logp = _step_logp(model, last, memory, src_keep, caches, t)  # (B*k,V)
        V = logp.shape[-1]
        cand = to_device(score, xp)[:, :, None] + logp.reshape(B, k, V)  # (B,k,V)  every one-token extension
        n = min(2 * k, k * V)                                    # 2k: k stay live even if k of them end here
        top = xp.argsort(-cand.reshape(B, k * V), axis=-1, kind="stable")[:, :n]  # (B,n)  best first
        top_score = to_numpy(xp.take_along_axis(cand.reshape(B, k * V), top, axis=-1))  # (B,n)
        top = to_numpy(top)                                      # (B,n)
        beam, word = top // V, top % V                           # (B,n)  which hypothesis, which next token

        score = np.full((B, k), DEAD)                            # (B,k)
        keep_beam = np.zeros((B, k), dtype=np.int64)             # (B,k)
        keep_word = np.full((B, k), pad, dtype=np.int64)         # (B,k)
        for b in range(B):
            if len(ended[b]) >= k:                               # this row is finished: its beams stay dead
                continue
            live = 0
            for r in range(n):
                if top_score[b, r] <= DEAD / 2:                  # sorted: no hypothesis from here on
                    break
                if word[b, r] == eos_id:
                    if r < k:
                        hyp = np.append(tokens[b, beam[b, r]], eos_id)
                        ended[b].append((top_score[b, r] / _penalty(t + 1, length_penalty), hyp))
                elif live < k:
                    score[b, live], keep_beam[b, live], keep_word[b, live] = top_score[b, r], beam[b, r], word[b, r]
                    live += 1
        if all(len(e) >= k for e in ended):
            break
        tokens = np.concatenate([np.take_along_axis(tokens, keep_beam[:, :, None], axis=1),
                                 keep_word[:, :, None]], axis=2)  # (B,k,t+1)
        rows = to_device((np.arange(B)[:, None] * k + keep_beam).reshape(-1), xp)  # (B*k,)  surviving beams' rows
        for cache in caches:                                     # cross-attention keys are one per row: unchanged
            cache["self"]["k"] = cache["self"]["k"][rows]        # (B*k,H,t+1,K)
            cache["self"]["v"] = cache["self"]["v"][rows]        # (B*k,H,t+1,K)
        last = keep_word.reshape(-1)                             # (B*k,)

    for b in range(B):                                           # rows that reached max_len end there, without EOS
        if len(ended[b]) < k:
            ended[b] += [(score[b, j] / _penalty(max_len, length_penalty), tokens[b, j])
                         for j in range(k) if score[b, j] > DEAD / 2]
    best = [max(e, key=lambda h: h[0]) for e in ended]
    tokens = _pack([hyp for _, hyp in best], pad)                # (B,L)
    return (tokens, np.array([s for s, _ in best])) if return_scores else tokens
