"""The same checks on a real GPU (CuPy). Skipped where CuPy or a GPU is missing; the whole suite
also runs on CuPy with scripts/test_gpu.sh."""

import numpy as np
import pytest

import npformer as nf
from npformer.backend import get_backend, to_numpy
from npformer.gradcheck import assert_all_pass
from npformer.gradcheck_cases import CASES

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradients_on_cupy(case):
    assert_all_pass(case.run("cupy"))


def test_a_training_step_matches_numpy():
    cfg = nf.TransformerConfig(src_vocab=11, tgt_vocab=11, d_model=16, n_heads=2, d_ff=32, dropout=0.0)
    rng = np.random.default_rng(0)
    src = rng.integers(3, 11, (4, 6))
    tgt_in = np.concatenate([np.ones((4, 1), int), src[:, ::-1]], axis=1)
    tgt_out = np.concatenate([src[:, ::-1], np.full((4, 1), 2)], axis=1)
    results = {}
    for backend in ("numpy", "cupy"):
        model = nf.Transformer(cfg, seed=0, dtype="float64", backend=backend)
        logits = model.forward(src, tgt_in)
        loss, dlogits = nf.cross_entropy(logits, tgt_out)
        model.zero_grad()
        model.backward(dlogits)
        results[backend] = (loss, {k: to_numpy(g) for k, g in model.gradients().items()})
    assert abs(results["numpy"][0] - results["cupy"][0]) < 1e-10
    for name, g in results["numpy"][1].items():
        np.testing.assert_allclose(results["cupy"][1][name], g, rtol=1e-7, atol=1e-10, err_msg=name)


def test_device_ids_out_of_range_are_caught():
    xp = get_backend("cupy")
    model = nf.Transformer(nf.TransformerConfig(src_vocab=7, tgt_vocab=7, d_model=8, n_heads=2, d_ff=16), seed=0,
                           backend="cupy")
    with pytest.raises(nf.InputError, match="outside the vocabulary"):
        model.forward(xp.asarray([[3, 9]]), xp.asarray([[1, 3]]))
