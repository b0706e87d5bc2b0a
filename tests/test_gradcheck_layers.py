"""Float64 finite-difference checks of every input and parameter of every layer."""

import numpy as np
import pytest

from npformer.gradcheck import GradientCheckError, assert_all_pass, check_gradients
from npformer.gradcheck_cases import CASES
from npformer.layers import Linear


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_layer_gradients(case, xp):
    results = assert_all_pass(case.run(xp))
    assert results, "a case that checks nothing proves nothing"


def test_every_parameter_of_every_case_is_checked(xp):
    for case in CASES:
        layer, inputs, _, _ = case.build(xp)
        checked = {r.tensor for r in case.run(xp)}
        assert set(layer.parameters()) | set(inputs) <= checked, case.name


def test_a_wrong_backward_is_caught(xp, dev):
    layer = Linear(3, 2, np.random.default_rng(0), xp, "float64")
    x = dev(np.random.default_rng(1).standard_normal((4, 3)))

    def wrong_backward(dout):
        layer.backward(dout)
        layer.grads["W"][0, 1] += 1e-3                            # one wrong element
        return {"x": dout @ layer.params["W"].T}

    layer.zero_grad()
    results = check_gradients("Linear", lambda: layer.forward(x), wrong_backward,
                              {"x": x, **layer.parameters()}, layer.gradients())
    with pytest.raises(GradientCheckError, match=r"d/dW .* at element \(0, 1\)"):
        assert_all_pass(results)


def test_random_direction_check_passes_and_catches(xp, dev):
    layer = Linear(3, 2, np.random.default_rng(0), xp, "float64")
    x = dev(np.random.default_rng(1).standard_normal((4, 3)))
    layer.zero_grad()
    ok = check_gradients("Linear", lambda: layer.forward(x), lambda d: {"x": layer.backward(d)},
                         {"x": x, **layer.parameters()}, layer.gradients(), max_elements=0, directions=2)
    assert_all_pass(ok)
    layer.zero_grad()
    bad = check_gradients("Linear", lambda: layer.forward(x), lambda d: {"x": 2 * layer.backward(d)},
                          {"x": x}, {}, max_elements=0, directions=1)
    assert not bad[-1].passed
