"""The toy tasks: copy, reverse and sort a sequence of symbols.

One token scheme serves every task:

    PAD = 0, BOS = 1, EOS = 2, symbols 3 .. V-1      (10 symbols by default, so V = 13)

    source          = the symbols                    3 9 4            (no BOS, no EOS)
    decoder input   = BOS + target                   1 4 9 3
    decoder output  = target + EOS                   4 9 3 2          (what the loss compares with)

A batch is padded with PAD to its longest sequence. Data is drawn on the host from a seeded
numpy.random.Generator, one sequence at a time (a length, then its symbols), so the first n
sequences of a draw do not depend on how many are drawn after them.
"""

from dataclasses import dataclass

import numpy as np

from npformer.errors import ConfigError, InputError, check_int
from npformer.model.config import MAX_SIZE

PAD, BOS, EOS = 0, 1, 2
FIRST_SYMBOL = 3
MAX_LEN = 100_000                      # a sequence far longer than any model's positions

# target = TASKS[name](source), on one 1-D host array of symbols
TASKS = {
    "copy": lambda s: s.copy(),
    "reverse": lambda s: s[::-1].copy(),
    "sort": lambda s: np.sort(s),
}


# How a source's length is drawn: "uniform" over min_len..max_len, or "long": half of the
# sources at max_len and the rest uniform, so the last positions are not rare (with uniform
# lengths, position p appears only in sources longer than p: the last one in 1 source of
# max_len - min_len + 1).
LENGTHS = ("uniform", "long")


@dataclass
class Task:
    """A task by name, with its alphabet size, range of source lengths (both ends included) and
    how lengths are drawn in that range (LENGTHS)."""

    name: str = "reverse"
    n_symbols: int = 10
    min_len: int = 1
    max_len: int = 16
    lengths: str = "uniform"

    def __post_init__(self):
        if not isinstance(self.name, str) or self.name not in TASKS:
            raise ConfigError(f"unknown task {self.name!r}: choose one of {', '.join(TASKS)}.")
        # bounds: the largest vocabulary a model may have
        self.n_symbols = check_int("n_symbols", self.n_symbols, 1, MAX_SIZE["src_vocab"] - FIRST_SYMBOL)
        self.min_len = check_int("min_len", self.min_len, 1, MAX_LEN)
        self.max_len = check_int("max_len", self.max_len, 1, MAX_LEN)
        if not 1 <= self.min_len <= self.max_len:
            raise ConfigError(f"lengths must satisfy 1 <= min_len <= max_len, got {self.min_len}..{self.max_len}.")
        if self.lengths not in LENGTHS:
            raise ConfigError(f"lengths must be one of {', '.join(LENGTHS)}, got {self.lengths!r}.")

    @property
    def vocab(self):
        """V: the three special tokens plus the symbols."""
        return FIRST_SYMBOL + self.n_symbols

    @property
    def vocabs(self):
        """(source V, target V): one vocabulary serves both sides."""
        return self.vocab, self.vocab

    def target(self, source):
        """The sequence the model must produce for `source` (1-D host ids), without EOS."""
        return TASKS[self.name](np.asarray(source))

    def sample(self, rng, n):
        """n source sequences (a list of 1-D int64 host arrays) drawn from `rng`."""
        out = []
        for _ in range(n):
            length = rng.integers(self.min_len, self.max_len + 1)
            if self.lengths == "long" and rng.random() < 0.5:
                length = self.max_len
            out.append(rng.integers(FIRST_SYMBOL, self.vocab, size=length))
        return out

    def check_source(self, source, what="source"):
        """Raise InputError unless `source` holds only this task's symbols (not PAD, BOS, EOS)."""
        source = np.asarray(source)
        bad = source[(source < FIRST_SYMBOL) | (source >= self.vocab)]
        if bad.size:
            raise InputError(f"{what} contains {int(bad[0])}, but symbols are {FIRST_SYMBOL}..{self.vocab - 1} "
                             f"(0, 1, 2 are PAD, BOS, EOS).")


@dataclass
class Batch:
    """Host arrays of one padded batch: src (B,S), tgt_in (B,T), tgt_out (B,T)."""

    src: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray

    @property
    def n_target_tokens(self):
        """Tokens the loss is taken over (EOS included, padding not)."""
        return int((self.tgt_out != PAD).sum())


def pad(seqs, length=None):
    """A list of 1-D host arrays -> (B, L) int64, padded on the right with PAD."""
    length = max(len(s) for s in seqs) if length is None else length
    out = np.full((len(seqs), length), PAD, dtype=np.int64)      # (B,L)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def make_batch(task, sources):
    """Source sequences -> a Batch: src = symbols, tgt_in = BOS + target, tgt_out = target + EOS."""
    targets = [task.target(s) for s in sources]
    tgt_in = pad([np.concatenate([[BOS], t]) for t in targets])   # (B,T)
    tgt_out = pad([np.concatenate([t, [EOS]]) for t in targets])  # (B,T)
    return Batch(pad(sources), tgt_in, tgt_out)


def strip(tokens):
    """One decoded row -> the tokens before the first EOS, as a list of ints (PAD dropped)."""
    out = []
    for t in np.asarray(tokens).tolist():
        if t == EOS:
            break
        if t != PAD:
            out.append(int(t))
    return out


def score(expected, produced):
    """Compare greedy decodes with the expected outputs.

    expected: (B,T) host tgt_out (target + EOS, then PAD); produced: (B,L) host decodes.
    Returns (token accuracy, exact match): the fraction of expected tokens (EOS included)
    produced at the right position, and the fraction of rows right through their EOS.
    """
    B, T = expected.shape
    got = np.full((B, T), -1, dtype=np.int64)                    # (B,T)  -1: nothing produced there
    L = min(T, produced.shape[1])
    got[:, :L] = produced[:, :L]
    real = expected != PAD                                       # (B,T)
    right = (got == expected) & real                             # (B,T)
    token_accuracy = right.sum() / real.sum()
    exact = (right.sum(axis=1) == real.sum(axis=1)).mean()       # right through EOS; after it, _finish pads
    return float(token_accuracy), float(exact)


# The held-out evaluation set is drawn from its own seed, fixed across training seeds, so runs
# with different seeds are scored on the same sequences.
EVAL_SEED = 1_000_000


def heldout(task, n, seed=EVAL_SEED):
    """The first n sequences of the task's fixed held-out set (a list of 1-D host arrays)."""
    return task.sample(np.random.default_rng(seed), n)
