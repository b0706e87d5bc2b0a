"""Rules on the source itself: CuPy only in the backend, no NumPy calls in the math, imports
pointing one way (backend <- layers <- model <- training <- cli)."""

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "npformer"
SOURCES = sorted(PKG.rglob("*.py"))

# Functions that run on the host by design: parameter initialisation, tables built once,
# checks of token ids. Everything else in the math packages must use `xp`, never `np`.
HOST_FUNCTIONS = {"__init__", "add_param", "glorot", "sinusoid_table", "check_ids"}
# The math: every layer, the stacks, the whole model, the loss and the masks. (Decoding and
# checkpoints are host-side by nature: they test tokens for EOS and write files.)
MATH = ("layers/", "model/encoder.py", "model/decoder.py", "model/transformer.py", "loss.py", "masks.py",
        "model/rnn.py", "model/vision.py")

# Which top-level modules or packages a module may import, by floor.
FLOORS = {"errors": 0, "backend_strict": 1, "backend": 1, "layers": 2, "masks": 2, "loss": 2, "model": 3, "gradcheck": 3, "exercises": 5,
          "gradcheck_cases": 3, "decoding": 4, "checkpoint": 4, "plots": 4, "train": 5, "bench": 5, "experiments": 5, "cli": 6,
          "__main__": 7, "__init__": 7}


def _rel(path):
    return path.relative_to(PKG)


def test_only_the_backend_imports_cupy():
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "cupy" for n in names) and path.name != "backend.py":
                offenders.append(str(_rel(path)))
    assert not offenders, f"only npformer/backend.py may import cupy: {offenders}"


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", [p for p in SOURCES if str(_rel(p)).startswith(MATH)], ids=lambda p: str(_rel(p)))
def test_math_code_uses_xp_not_numpy(path):
    offenders = []
    for fn in _functions(ast.parse(path.read_text())):
        if fn.name in HOST_FUNCTIONS:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and node.id == "np":
                offenders.append(f"{fn.name}:{node.lineno}")
    assert not offenders, f"{_rel(path)} calls NumPy in math code (use xp from get_xp): {offenders}"


def test_the_checker_can_fail(tmp_path):
    bad = "import numpy as np\nclass L:\n    def forward(self, x):\n        return np.exp(x)\n"
    tree = ast.parse(bad)
    uses = [n for fn in _functions(tree) for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id == "np"]
    assert uses


def _floor(module_parts):
    return FLOORS.get(module_parts[0].removesuffix(".py"))


def test_imports_point_one_way():
    offenders = []
    for path in SOURCES:
        rel = _rel(path).parts
        mine = _floor(rel)
        if mine is None:
            offenders.append(f"{'/'.join(rel)} has no floor in FLOORS")
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("npformer."):
                target = node.module.split(".")[1:]
                theirs = _floor(target)
                if theirs is not None and theirs > mine and target[0] != rel[0]:
                    offenders.append(f"{'/'.join(rel)} (floor {mine}) imports {node.module} (floor {theirs})")
    assert not offenders, "\n".join(offenders)
