"""The exercises: every reference solution passes its own check, every hint is given to the
mistake it describes (a planted wrong solution each), every loader error is one sentence, and
--train swaps a learner's layer into the model."""

import re
import textwrap

import numpy as np
import pytest

from npformer.cli import main
from npformer.exercises import EXERCISES, ExerciseError, check_file, load
from npformer.exercises.checker import main_check
from npformer.exercises.hints import ACCUMULATE, BROADCAST_ADD, HINTS
from npformer.exercises.train import SWAPS, swap_in, train_side_by_side
from npformer.layers import LayerNorm as PackageLayerNorm

NAMES = ["linear", "softmax", "cross_entropy", "attention", "layernorm", "embedding", "dropout", "feedforward",
         "multihead", "sublayer", "encoder_layer", "gru", "transformer"]


def plant(tmp_path, name, body, base="template", filename=None):
    """A learner's file for exercise `name`: the template's (or the solution's) class with `body`
    (methods, indented by 4) in its place."""
    ex = EXERCISES[name]
    module = f"npformer.exercises.templates.{name}" if base == "template" else "npformer.exercises.solutions"
    code = (f"import numpy as np\nfrom {module} import {ex.cls} as Base\n\nEXERCISE = {name!r}\n\n\n"
            f"class {ex.cls}(Base):\n" + textwrap.indent(textwrap.dedent(body), "    "))
    path = tmp_path / (filename or f"{name}.py")
    path.write_text(code)
    return path


def report(path):
    lines = []
    passed = check_file(path, write=lines.append)
    return passed, "\n".join(lines)


def test_the_ladder_is_the_thirteen_exercises_in_order():
    assert list(EXERCISES) == NAMES
    for ex in EXERCISES.values():
        assert ex.template().__name__ == ex.cls and ex.cases


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_solution_passes_its_check(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(f"from npformer.exercises.solutions import {EXERCISES[name].cls}\n")
    passed, out = report(path)
    assert passed, out
    assert "FAIL" not in out and "checks pass" in out


# ----------------------------------------------------------------------------- plain solutions

LAYERNORM = """
def backward(self, dout):
    xhat, rstd = self.cache
    self.grads["beta"] += dout.sum(axis=(0, 1))
    self.grads["gamma"] += (dout * xhat).sum(axis=(0, 1))
    dxhat = dout * self.params["gamma"]
    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                   - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
"""

MULTIHEAD = """
def backward(self, dout):
    x, kv, q, k, v, A, concat, is_self = self.cache
    p, g = self.params, self.grads
    D = x.shape[-1]
    g["Wo"] += concat.reshape(-1, D).T @ dout.reshape(-1, D)
    g["bo"] += dout.reshape(-1, D).sum(axis=0)
    dheads = self.split_heads(dout @ p["Wo"].T)
    dA = dheads @ v.swapaxes(-1, -2)
    dv = A.swapaxes(-1, -2) @ dheads
    ds = A * (dA - (dA * A).sum(axis=-1, keepdims=True)) / q.shape[-1] ** 0.5
    dQ, dK, dV = (self.merge_heads(t) for t in (ds @ k, ds.swapaxes(-1, -2) @ q, dv))
    for name, inp, d in (("q", x, dQ), ("k", kv, dK), ("v", kv, dV)):
        g["W" + name] += inp.reshape(-1, D).T @ d.reshape(-1, D)
        g["b" + name] += d.reshape(-1, D).sum(axis=0)
    dx = dQ @ p["Wq"].T
    if is_self:
        return dx + PATHS
    return dx, dK @ p["Wk"].T + dV @ p["Wv"].T
"""


def test_plain_solutions_pass(tmp_path):
    for name, body in (("layernorm", LAYERNORM), ("multihead", MULTIHEAD.replace("PATHS", "dK @ p['Wk'].T + dV @ p['Wv'].T"))):
        passed, out = report(plant(tmp_path, name, body))
        assert passed, out


# ----------------------------------------------------------------------------- planted mistakes

ATTENTION = """
def backward(self, dout):
    q, k, v, A = self.cache
    dA = dout @ v.swapaxes(-1, -2)
    dv = A.swapaxes(-1, -2) @ dout
    ds = DSCORES
    return ds @ k, ds.swapaxes(-1, -2) @ q, dv
"""

FEEDFORWARD = """
def backward(self, dout):
    x, h, a = self.cache
    p, g = self.params, self.grads
    D, F = p["W1"].shape
    g["W2"] += a.reshape(-1, F).T @ dout.reshape(-1, D)
    g["b2"] += dout.reshape(-1, D).sum(axis=0)
    dh = dout @ p["W2"].T
    g["W1"] += x.reshape(-1, D).T @ dh.reshape(-1, F)
    g["b1"] += dh.reshape(-1, F).sum(axis=0)
    return dh @ p["W1"].T
"""

TRANSFORMER = """
def backward(self, dlogits):
    dy = self.generator.backward(dlogits)
    dy, dmemory = self.decoder.backward(dy)
    self.tgt_embed.backward(self.tgt_pos.backward(self.tgt_drop.backward(dy)))
    ENCODER
"""

LINEAR = """
def backward(self, dout):
    x = self.cache
    W_GRAD
    self.grads["b"] += B_GRAD
    return dout @ self.params["W"].T
"""
RIGHT_W = 'self.grads["W"] += np.einsum("bti,bto->io", x, dout)'

# (exercise, the planted backward, a piece of the hint it must get, base)
PLANTED = {
    "softmax row dot": ("softmax", "def backward(self, dout):\n    return self.cache * dout\n", None),
    "attention 1/sqrt(d_k)": ("attention", ATTENTION.replace("DSCORES", "A * (dA - (dA * A).sum(axis=-1, keepdims=True))"), None),
    "attention row dot": ("attention", ATTENTION.replace("DSCORES", "A * dA / q.shape[-1] ** 0.5"), None),
    "layernorm means": ("layernorm", LAYERNORM.replace("return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)\n"
                                                       "                   - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))",
                                                       "return rstd * dxhat"), None),
    "embedding W[ids] += g": ("embedding", "def backward(self, dout):\n    self.grads['W'][self.cache] += dout\n", None),
    "cross-entropy padding": ("cross_entropy", "def backward(self, dout=1.0):\n    logp, q, valid, n = self.cache\n"
                              "    return dout * (np.exp(logp) - q) / n\n", None),
    "cross-entropy count": ("cross_entropy", "def backward(self, dout=1.0):\n    logp, q, valid, n = self.cache\n"
                            "    return dout * (np.exp(logp) - q) * valid[..., None]\n", None),
    "dropout scale": ("dropout", "def backward(self, dout):\n    if self.cache is None:\n        return dout\n"
                      "    return dout * self.cache * (1 - self.p)\n", None),
    "feedforward relu": ("feedforward", FEEDFORWARD, None),
    "multihead one path": ("multihead", MULTIHEAD.replace(" + PATHS", ""), None),
    "sublayer residual": ("sublayer", """
        def backward(self, dout):
            dz = self.norm.backward(dout) if self.position == "post" else dout
            dh = self.sublayer.backward(self.dropout.backward(dz))
            return self.norm.backward(dh) if self.position == "pre" else dh
        """, None),
    "gru carry": ("gru", """
        def backward(self, dout):
            steps = [self.step_backward(dout[:, t], c) for t, c in enumerate(self.cache)]
            return np.stack([dx for dx, _ in steps], axis=1), steps[0][1]
        """, "solution"),
    "transformer sqrt(D)": ("transformer", TRANSFORMER.replace("ENCODER", "dx = self.encoder.backward(dmemory)\n"
                            "    self.src_embed.backward(self.src_pos.backward(self.src_drop.backward(dx)))"), None),
    "transformer memory": ("transformer", TRANSFORMER.replace("self.tgt_embed.backward(", "self.tgt_embed.backward("
                           "self.emb_scale * ").replace("ENCODER", "pass"), None),
}
HINT_OF = {"softmax row dot": 0, "attention 1/sqrt(d_k)": 0, "attention row dot": 1, "layernorm means": 0,
           "embedding W[ids] += g": 0, "cross-entropy padding": 0, "cross-entropy count": 1, "dropout scale": 0,
           "feedforward relu": 0, "multihead one path": 0, "sublayer residual": 0, "gru carry": 0,
           "transformer sqrt(D)": 0, "transformer memory": 1}


def test_every_hint_has_a_planted_mistake():
    planted = {(PLANTED[k][0], HINT_OF[k]) for k in PLANTED}
    assert planted == {(name, i) for name, hints in HINTS.items() for i in range(len(hints))}


@pytest.mark.parametrize("mistake", list(PLANTED))
def test_a_planted_mistake_gets_its_hint(tmp_path, mistake):
    name, body, base = PLANTED[mistake]
    passed, out = report(plant(tmp_path, name, body, base or "template"))
    hint = HINTS[name][HINT_OF[mistake]].text
    assert not passed
    assert hint in out, out
    failing = [line for line in out.splitlines() if "FAIL" in line]
    assert failing and all(hint in line for line in failing if "wrong at" in line), out
    assert all("numeric" in line and "yours" in line for line in failing if "wrong at" in line)


def test_a_gradient_taken_from_one_row_gets_the_broadcast_hint(tmp_path):
    body = LAYERNORM.replace("(dout * xhat).sum(axis=(0, 1))", "(dout * xhat)[0].sum(axis=0)")
    passed, out = report(plant(tmp_path, "layernorm", body))
    assert not passed
    assert re.search(r"dgamma +FAIL  wrong at \[\d\]: numeric \S+, yours \S+ -> see \(LN-6\): gamma was broadcast "
                     "over every row", out), out


def test_a_gradient_left_with_its_batch_axes_gets_the_shape_hint(tmp_path, capsys):
    body = LINEAR.replace("W_GRAD", RIGHT_W).replace("B_GRAD", "dout.sum(axis=0)")
    err = _cli_error(capsys, ["exercise", "check", str(plant(tmp_path, "linear", body))])
    assert "raised ValueError" in err and 'line 12: `self.grads["b"] += dout.sum(axis=0)`' in err, err
    assert BROADCAST_ADD in err
    body = LINEAR.replace("W_GRAD", RIGHT_W).replace('self.grads["b"] += B_GRAD', 'self.grads["b"] = dout.sum(axis=0)')
    passed, out = report(plant(tmp_path, "linear", body))
    assert not passed
    assert re.search(r"db +FAIL  is \(3, 5\) float64, should be \(5,\) float64 -> see \(LIN-3\): b was broadcast", out), out


def test_overwritten_gradients_get_the_accumulate_hint(tmp_path):
    body = LINEAR.replace("W_GRAD", 'self.grads["W"][...] = np.einsum("bti,bto->io", x, dout)')
    passed, out = report(plant(tmp_path, "linear", body.replace("B_GRAD", "dout.sum(axis=(0, 1))")))
    assert not passed
    assert re.search(r"dW +FAIL  a second backward did not double it -> see \(LIN-2\): ", out), out
    assert ACCUMULATE in out and re.search(r"dx +\(2, 3, 4\) +pass", out)   # its finite differences pass


def test_a_new_gradient_array_and_changed_dout_or_cache_are_named(tmp_path):
    body = LINEAR.replace("W_GRAD", 'self.grads["W"] = self.grads["W"] + np.einsum("bti,bto->io", x, dout)')
    _, out = report(plant(tmp_path, "linear", body.replace("B_GRAD", "dout.sum(axis=(0, 1))")))
    assert "backward put a new array in self.grads" in out, out
    _, out = report(plant(tmp_path, "dropout", "def backward(self, dout):\n    if self.cache is None:\n"
                          "        return dout\n    dout *= self.cache\n    return dout\n"))
    assert "purity   FAIL  backward changed dout in place" in out, out
    body = LAYERNORM.replace("xhat, rstd = self.cache", "xhat, rstd = self.cache\n    xhat *= 1.0")
    _, out = report(plant(tmp_path, "layernorm", body.replace("xhat *= 1.0", "xhat += 0.5")))
    assert "purity   FAIL  backward changed the cache" in out, out


# ----------------------------------------------------------------------------- the loader

def _cli_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_loader_errors_are_one_sentence(tmp_path, capsys):
    path = plant(tmp_path, "layernorm", LAYERNORM)
    cases = {
        "syntax": (LAYERNORM.replace("xhat, rstd = self.cache", "xhat, rstd = = self.cache"),
                   f"{path}, line 10: syntax error"),
        "class": (None, f"{path} has no class LayerNorm"),
        "signature": (LAYERNORM.replace("def backward(self, dout):", "def backward(self, dout, cache):"),
                      "LayerNorm.backward takes (dout, cache), but the template's takes (dout)"),
        "raises": (LAYERNORM.replace('self.params["gamma"]', 'self.params["gama"]'),
                   "LayerNorm.backward raised KeyError: 'gama', at "),
        "unwritten": ("def backward(self, dout):\n    raise NotImplementedError\n", "is not written yet"),
        "import": ("", f"{path} cannot be imported: RuntimeError: boom, at {path} line 3: `raise RuntimeError('boom')`"),
        "returns": (LAYERNORM.replace("return rstd", "return 1, rstd"), "LayerNorm.backward returned a tuple of 2; "
                                                                         "it must return dx (2, 3, 6), one array"),
    }
    for what, (body, sentence) in cases.items():
        if body is None:
            path.write_text("import numpy as np\nEXERCISE = 'layernorm'\n")
        elif what == "import":
            path.write_text("import numpy as np\nEXERCISE = 'layernorm'\nraise RuntimeError('boom')\n")
        else:
            plant(tmp_path, "layernorm", body)
        err = _cli_error(capsys, ["exercise", "check", str(path)])
        assert sentence in err, (what, err)
    assert "layernorm.py line 13: `dxhat = dout * self.params[\"gama\"]`" in _cli_error(
        capsys, ["exercise", "check", str(plant(tmp_path, "layernorm", cases["raises"][0]))])
    assert "does not exist" in _cli_error(capsys, ["exercise", "check", str(tmp_path / "nothing.py")])
    other = tmp_path / "notes.py"
    other.write_text("x = 1\n")
    assert "is not an exercise file" in _cli_error(capsys, ["exercise", "check", str(other)])


def test_loader_returns_the_exercise_and_the_class(tmp_path):
    ex, cls = load(plant(tmp_path, "layernorm", LAYERNORM, filename="mine.py"))   # EXERCISE names it, not the file
    assert ex.name == "layernorm" and cls.__name__ == "LayerNorm"
    with pytest.raises(ExerciseError):
        main_check(tmp_path / "missing.py")


# ----------------------------------------------------------------------------- the command

def test_start_writes_the_template_and_never_overwrites(tmp_path, capsys):
    folder = tmp_path / "ex"
    assert main(["exercise", "start", "layernorm", "--dir", str(folder)]) == 0
    path = folder / "layernorm.py"
    assert "raise NotImplementedError" in path.read_text() and "(LN-6)" in path.read_text()
    path.write_text(path.read_text() + "# my work\n")
    err = _cli_error(capsys, ["exercise", "start", "layernorm", "--dir", str(folder)])
    assert "already exists" in err and path.read_text().endswith("# my work\n")
    assert "there is no exercise 'lstm'" in _cli_error(capsys, ["exercise", "start", "lstm", "--dir", str(folder)])
    assert "is a file, not a folder" in _cli_error(capsys, ["exercise", "start", "linear", "--dir", str(path)])


def test_list_marks_what_the_folder_passes(tmp_path, capsys):
    plant(tmp_path, "layernorm", LAYERNORM)
    plant(tmp_path, "multihead", MULTIHEAD.replace(" + PATHS", ""))
    assert main(["exercise", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line for line in out.splitlines() if line[:3].strip().rstrip(".").isdigit()}
    assert list(rows) == NAMES
    assert rows["layernorm"].endswith("passes") and rows["multihead"].endswith("started, not passing yet")
    assert rows["linear"].endswith(" -") and "docs/derivations/layernorm.md" in rows["layernorm"]


def test_check_exit_codes(tmp_path, capsys):
    assert main(["exercise", "check", str(plant(tmp_path, "layernorm", LAYERNORM))]) == 0
    assert main(["exercise", "check", str(plant(tmp_path, "multihead", MULTIHEAD.replace(" + PATHS", ""))),
                 "--train"]) == 1
    assert "--train waits until every check passes." in capsys.readouterr().out
    err = _cli_error(capsys, ["exercise", "check", str(plant(tmp_path, "softmax", "pass\n")), "--train"])
    assert "the softmax exercise is not one" in err


# ----------------------------------------------------------------------------- --train

TINY = dict(d_model=16, n_heads=2, d_ff=32, n_layers=1, batch_size=8, eval_size=10, replicas=2, warmup=1, lr=1e-2)


@pytest.mark.parametrize("name, body, instances", [
    ("layernorm", LAYERNORM, 5),                                  # 2 in the encoder layer, 3 in the decoder layer
    ("multihead", MULTIHEAD.replace("PATHS", "dK @ p['Wk'].T + dV @ p['Wv'].T"), 3),
])
def test_train_swaps_every_instance_and_follows_the_package(tmp_path, name, body, instances):
    ex, cls = load(plant(tmp_path, name, body))
    calls = []

    class Counted(cls):
        def backward(self, dout):
            calls.append(1)
            return super().backward(dout)
    lines = []
    curves = train_side_by_side(ex, Counted, steps=3, every=3, write=lines.append, **TINY)
    assert len(calls) == 3 * instances * TINY["replicas"]
    np.testing.assert_allclose(curves["yours"], curves["package"], rtol=1e-4)
    assert f"({instances} instances in the model)" in lines[0] and "follows the package's layer" in lines[-1]


def test_train_tells_a_wrong_layer_from_the_package(tmp_path):
    ex, cls = load(plant(tmp_path, "layernorm", PLANTED["layernorm means"][1]))
    curves = train_side_by_side(ex, cls, steps=5, every=5, write=lambda line: None, **TINY)
    assert curves["yours"][0] == pytest.approx(curves["package"][0], rel=1e-5)   # one forward, the same model
    assert abs(curves["yours"][-1] - curves["package"][-1]) > 1e-2


def test_swap_in_touches_only_the_exercise_layer():
    from npformer.model import Transformer
    model = Transformer(dict(src_vocab=9, tgt_vocab=9, d_model=8, n_heads=2, d_ff=16, n_layers=1), backend="numpy")
    ex = EXERCISES["layernorm"]
    assert swap_in(model, ex, ex.template()) == 5                # 2 in the encoder layer, 3 in the decoder layer
    swapped = [layer for _, layer in model.named_layers() if "forward" in vars(layer)]
    assert swapped and all(isinstance(layer, PackageLayerNorm) for layer in swapped)
    assert set(SWAPS) == {"linear", "layernorm", "feedforward", "embedding", "multihead"}

