"""The library's boundary: a bad argument to the public API raises npformer's own error (a
subclass of NpformerError, or a ValueError / TypeError raised by npformer's code) naming the
argument, never an error from deep inside NumPy. A few kinds by hand, then Hypothesis throws
random bad inputs at every public entry point."""

import json
import math
import os
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from npformer.errors import ConfigError, InputError, NpformerError
from npformer.loss import cross_entropy
from npformer.model import Transformer, TransformerConfig, load
from npformer.train.loop import TrainConfig
from npformer.train.tasks import Task

PACKAGE = os.path.dirname(os.path.abspath(__import__("npformer").__file__))
SMALL = dict(src_vocab=7, tgt_vocab=7, d_model=8, n_heads=2, d_ff=8, n_layers=1, max_len=16, dropout=0.0)


@pytest.fixture(scope="module")
def model():
    return Transformer(SMALL, seed=0)


# ----------------------------------------------------------------------------- the loss

def test_a_minus_inf_logit_is_a_masked_class(xp, dev, host):
    """p = 0 for the masked class; loss and gradient finite and equal to those of the other classes alone."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 5))                      # (B,T,V)
    targets = np.array([[1, 2, 0], [2, 1, 2]])                   # (B,T)  0 is padding; class 3 is never a target
    masked = logits.copy()
    masked[..., 3] = -np.inf
    loss, dlogits = cross_entropy(dev(masked), dev(targets))
    ref_loss, ref_d = cross_entropy(dev(np.delete(logits, 3, axis=-1)), dev(targets))
    assert math.isfinite(loss) and abs(loss - ref_loss) < 1e-12
    d = host(dlogits)
    assert np.isfinite(d).all() and (d[..., 3] == 0).all()
    np.testing.assert_allclose(np.delete(d, 3, axis=-1), host(ref_d), atol=1e-15)
    smoothed, d_smoothed = cross_entropy(dev(masked), dev(targets), label_smoothing=0.1)
    assert smoothed == math.inf and np.isfinite(host(d_smoothed)).all()   # q gives the masked class eps/V


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # inf - inf, the point of the test
def test_plus_inf_logits_give_nan_as_documented(xp, dev):
    logits = np.zeros((1, 2, 4))
    logits[0, 0, 1] = np.inf
    assert math.isnan(cross_entropy(dev(logits), dev(np.array([[1, 2]])))[0])
    import npformer.loss
    assert "A +inf logit, or a row that is -inf everywhere, has no softmax" in " ".join(npformer.loss.__doc__.split())


def test_the_loss_given_a_list_says_so():
    with pytest.raises(InputError, match=r"^logits must be a floating-point array \(B, T, V\), got list\.$"):
        cross_entropy([[[0.0, 1.0]]], [[1]])
    with pytest.raises(InputError, match=r"got ndarray of int64\.$"):
        cross_entropy(np.zeros((1, 1, 2), np.int64), [[1]])


# ----------------------------------------------------------------------------- the model's boundary

def test_backward_before_forward_and_a_wrong_dout(xp):
    m = Transformer(SMALL, seed=0, backend=xp)
    with pytest.raises(InputError, match=r"^backward needs the caches of a forward pass: call forward first\.$"):
        m.backward(xp.zeros((1, 2, 7), dtype=xp.float32))
    m.forward(np.array([[3, 4]]), np.array([[1, 5, 6]]))
    with pytest.raises(InputError, match=r"^dlogits must have the logits' shape \(1, 3, 7\), got \(1, 3, 6\)\.$"):
        m.backward(xp.zeros((1, 3, 6), dtype=xp.float32))
    with pytest.raises(InputError, match=r"got list\.$"):
        m.backward([[0.0]])


def test_numpy_integers_are_integers_and_a_model_is_floating_point(tmp_path):
    cfg = TransformerConfig(src_vocab=np.int64(13), tgt_vocab=np.int32(13), d_model=np.int64(8), n_heads=2,
                            d_ff=8, n_layers=1)
    assert type(cfg.src_vocab) is int and json.dumps(cfg.to_dict())
    with pytest.raises(ConfigError, match=r"^dtype must be float16, float32 or float64, got 'int32'\.$"):
        Transformer(cfg, dtype="int32")


def test_a_nan_length_penalty_is_refused(model):
    with pytest.raises(InputError, match=r"^length_penalty must be a number in \[0, 10\], got nan\.$"):
        model.beam_search(np.array([[3, 4]]), length_penalty=float("nan"))


# ----------------------------------------------------------------------------- random bad inputs

def ours(e):
    """True if e is npformer's: an NpformerError, or a ValueError / TypeError raised in npformer's code."""
    if isinstance(e, NpformerError):
        return True
    frame = traceback.extract_tb(e.__traceback__)[-1]
    return isinstance(e, (ValueError, TypeError)) and os.path.abspath(frame.filename).startswith(PACKAGE)


def call(f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except Exception as e:                                       # noqa: BLE001  the property is about which
        assert ours(e), f"{type(e).__name__} from outside npformer: {e}\n{''.join(traceback.format_exception(e))}"


ODD = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.floats(allow_nan=True, allow_infinity=True),
                st.integers(-2 ** 70, 2 ** 70), st.integers(-3, 3).map(np.int64), st.just([1, 2]),
                st.just({"a": 1}))
SETTING = st.one_of(ODD, st.integers(0, 64))
MODEL_KEYS = ["src_vocab", "tgt_vocab", "d_model", "n_heads", "d_ff", "n_layers", "dropout", "max_len", "norm",
              "positional", "tie_embeddings", "pad_id", "activation", "attention_score"]
TRAIN_KEYS = ["task", "n_symbols", "min_len", "max_len", "d_model", "n_heads", "steps", "batch_size", "lr",
              "warmup", "clip", "label_smoothing", "eval_every", "eval_size", "target", "seed", "replicas", "dtype",
              "schedule", "model", "diverge_factor", "diverge_steps", "diverge_drop", "dropout", "norm"]
# derandomize: CI sees the same examples every run; database=None: nothing written into the checkout
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.dictionaries(st.sampled_from(MODEL_KEYS), SETTING, max_size=4))
def test_model_configurations(changes):
    call(TransformerConfig, **{"src_vocab": 7, "tgt_vocab": 7, **changes})
    call(TransformerConfig.from_dict, changes)


@FAST
@given(st.dictionaries(st.sampled_from(TRAIN_KEYS), SETTING, max_size=3))
def test_training_configurations(changes):
    call(TrainConfig, **changes)
    call(Task, *[changes.get(k, d) for k, d in (("task", "copy"), ("n_symbols", 4), ("min_len", 1), ("max_len", 4))])


ARRAYS = st.one_of(ODD, st.builds(lambda shape, fill, dtype: np.full(shape, fill).astype(dtype),
                                  st.lists(st.integers(0, 3), max_size=4).map(tuple),
                                  st.sampled_from([0, 3, -1, 99, 2 ** 40, 0.5, np.nan]),
                                  st.sampled_from(["int64", "int8", "uint16", "float32", "bool", "U1"])))


@FAST
@given(src=ARRAYS, tgt=ARRAYS)
def test_model_inputs(model, src, tgt):
    call(model.forward, src, tgt)


@FAST
@given(src=ARRAYS, max_len=SETTING, beam=SETTING, penalty=SETTING)
def test_decoding_arguments(model, src, max_len, beam, penalty):
    call(model.greedy_decode, src, max_len=max_len)
    call(model.greedy_decode, np.array([[3, 4]]), max_len=max_len)
    call(model.beam_search, np.array([[3, 4]]), beam_size=beam, max_len=3, length_penalty=penalty)


@FAST
@given(logits=ARRAYS, targets=ARRAYS, smoothing=SETTING)
def test_loss_arguments(logits, targets, smoothing):
    call(cross_entropy, logits, targets)
    call(cross_entropy, np.zeros((1, 2, 3), np.float32), targets, label_smoothing=smoothing)


@FAST
@given(data=st.binary(max_size=300), cut=st.integers(0, 10 ** 6))
def test_checkpoint_files(model, tmp_path_factory, data, cut):
    folder = tmp_path_factory.mktemp("ckpt")
    good = folder / "good.npz"
    model.save(good)
    whole = good.read_bytes()
    spliced = folder / "spliced.npz"                             # a good file with bytes overwritten somewhere
    at = cut % len(whole)
    spliced.write_bytes(whole[:at] + data + whole[at + len(data):])
    call(load, spliced)
    raw = folder / "raw.npz"
    raw.write_bytes(data)
    call(load, raw)
