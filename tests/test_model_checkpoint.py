"""Checkpoints: an exact round trip, across backends, atomic against a crash mid-save, and one
clear sentence for a missing, truncated or foreign file."""

import json

import numpy as np
import pytest

import npformer.model.checkpoint as checkpoint
from npformer import CheckpointError, Transformer, load
from npformer.backend import to_numpy

SRC = np.array([[3, 4, 5, 6], [5, 3, 0, 0]])
TGT = np.array([[1, 3, 4], [1, 6, 0]])


def tiny(backend, dtype="float32", seed=0, **overrides):
    cfg = dict(src_vocab=11, tgt_vocab=11, d_model=8, n_heads=2, d_ff=16, n_layers=2, dropout=0.1, max_len=10,
               norm="pre", positional="learned", tie_embeddings=True)
    cfg.update(overrides)
    return Transformer(cfg, seed=seed, dtype=dtype, backend=backend)


def same_model(a, b, rtol=0.0):
    """Identical parameters; outputs identical on one device (rtol 0), or within rounding across
    devices, whose libraries sum in different orders."""
    pa, pb = a.parameters(), b.parameters()
    assert pa.keys() == pb.keys() and a.cfg == b.cfg and a.dtype == b.dtype
    for k in pa:
        assert np.array_equal(to_numpy(pa[k]), to_numpy(pb[k])), k
    np.testing.assert_allclose(to_numpy(a.forward(SRC, TGT, training=False)),
                               to_numpy(b.forward(SRC, TGT, training=False)), rtol=rtol, atol=0)


def assert_one_sentence(error):
    msg = str(error)
    assert "\n" not in msg and msg.endswith(".") and ". " not in msg[:-1], f"not one sentence: {msg!r}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_exact(xp, tmp_path, dtype):
    model = tiny(xp, dtype, seed=3)
    path = tmp_path / "model.npz"
    model.save(path, extra={"step": np.array(7)}, meta={"note": "after 7 steps"})
    same_model(model, load(path, backend=xp))
    header, params, extra = checkpoint.read(path)
    assert header["meta"] == {"note": "after 7 steps"} and int(extra["step"]) == 7
    assert all(isinstance(v, np.ndarray) for v in params.values())


@pytest.mark.parametrize("saved_on,loaded_on", [("numpy", "strict"), ("strict", "numpy")])
def test_saved_on_one_backend_loads_on_the_other(tmp_path, saved_on, loaded_on):
    model = tiny(saved_on, "float64", seed=4)
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz", backend=loaded_on)
    assert type(loaded.parameters()["src_embed.W"]) is type(tiny(loaded_on).parameters()["src_embed.W"])
    same_model(model, loaded)


@pytest.mark.gpu
def test_saved_on_the_gpu_loads_on_the_cpu(tmp_path):
    model = tiny("cupy", "float64", seed=5)
    model.save(tmp_path / "m.npz")
    same_model(model, load(tmp_path / "m.npz", backend="numpy"), rtol=1e-12)


def test_a_crash_mid_save_leaves_the_previous_checkpoint_whole(xp, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = tiny(xp, seed=1)
    old.save(path)
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")                   # some bytes reach the disk, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        tiny(xp, seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"], "a temporary file was left behind"
    same_model(old, load(path, backend=xp))


def test_refuses_what_would_not_load_again(xp, tmp_path):
    model = tiny(xp)
    with pytest.raises(CheckpointError, match=r"^extra array 'names' holds Python objects") as e:
        model.save(tmp_path / "m.npz", extra={"names": np.array([{"a": 1}], dtype=object)})
    assert_one_sentence(e.value)
    with pytest.raises(CheckpointError, match=r"^the checkpoint's meta must be JSON data") as e:
        model.save(tmp_path / "m.npz", meta={"when": object()})
    assert_one_sentence(e.value)
    assert not list(tmp_path.iterdir())


def _write_foreign(tmp_path, kind, good):
    path = tmp_path / f"{kind}.npz"
    data = good.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("step,loss\n1,2.3\n")
    elif kind == "pickle":
        np.save(path.with_suffix(".npy"), np.array([{"code": "runs"}], dtype=object), allow_pickle=True)
        path = path.with_suffix(".npy")
    elif kind == "lone array":
        np.save(path.with_suffix(".npy"), np.arange(3))
        path = path.with_suffix(".npy")
    elif kind == "foreign npz":
        np.savez(path, weights=np.ones(3))
    elif kind == "other format":
        np.savez(path, header=np.array(json.dumps({"format": "someone-else-2"})))
    elif kind == "object params":
        header = json.loads(str(np.load(good)["header"]))
        with open(path, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **{"param/x": np.array([None], dtype=object)})
    elif kind == "bad config":
        with np.load(good) as z:
            files = {k: z[k] for k in z.files}
        header = json.loads(str(files.pop("header")))
        header["config"]["n_heads"] = 3
        with open(path, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **files)
    return path


FOREIGN = [
    ("truncated", r"is not a readable npformer checkpoint \(truncated or another kind of file\)\.$"),
    ("empty", r"is not a readable npformer checkpoint \(truncated or another kind of file\)\.$"),
    ("text", r"is not a readable npformer checkpoint \(truncated or another kind of file\)\.$"),
    ("pickle", r"is not a readable npformer checkpoint \(truncated or another kind of file\)\.$"),
    ("lone array", r"is not a readable npformer checkpoint \(truncated or another kind of file\)\.$"),
    ("object params", r"is not a readable npformer checkpoint \(truncated or another kind of file\)\.$"),
    ("foreign npz", r"is not an npformer checkpoint \(no npformer header\)\.$"),
    ("other format", r"is not an npformer checkpoint \(format 'someone-else-2'\)\.$"),
    ("bad config", r"holds a configuration this npformer cannot build \(d_model \(8\) must be divisible by "
                   r"n_heads \(3\)\)\.$"),
]


@pytest.mark.parametrize("kind,message", FOREIGN, ids=[f[0] for f in FOREIGN])
def test_a_bad_file_gets_one_clear_sentence(xp, tmp_path, kind, message):
    good = tmp_path / "good.npz"
    tiny(xp).save(good)
    path = _write_foreign(tmp_path, kind, good)
    with pytest.raises(CheckpointError, match=message) as e:
        load(path, backend=xp)
    assert_one_sentence(e.value)


def test_missing_file_and_directory(xp, tmp_path):
    with pytest.raises(CheckpointError, match=r"^no checkpoint at .*nothing\.npz\.$"):
        load(tmp_path / "nothing.npz", backend=xp)
    with pytest.raises(CheckpointError, match=r"is a directory, not a checkpoint file\.$"):
        load(tmp_path, backend=xp)


def test_a_checkpoint_of_another_shape_does_not_fit(xp, tmp_path):
    tiny(xp, d_model=8).save(tmp_path / "small.npz")
    _, params, _ = checkpoint.read(tmp_path / "small.npz")
    with pytest.raises(CheckpointError, match=r"src_embed\.W has shape \(11, 8\), the model expects \(11, 16\)\.$"):
        checkpoint.load_into(tiny(xp, d_model=16), params, "small.npz")
    with pytest.raises(CheckpointError, match=r"does not fit this model: missing \['generator\.W', 'tgt_embed\.W'\]"):
        checkpoint.load_into(tiny(xp, tie_embeddings=False), params, "small.npz")
