"""Cross-entropy with label smoothing and padding, against a loop over tokens and classes; its
numerics at extreme logits; bad input in one sentence. (Its gradient is checked by finite
differences in gradcheck_cases: "CrossEntropy" and every whole-model case.)"""

import math

import numpy as np
import pytest

from npformer import InputError, cross_entropy
from npformer.backend import to_device, to_numpy
from npformer.loss import log_softmax

PAD = 0


def ref_cross_entropy(logits, targets, pad, eps):
    """Token by token: q = (1 - eps) onehot + eps / V over all V classes; mean over non-pad tokens."""
    B, T, V = logits.shape
    total, n, grad = 0.0, 0, np.zeros_like(logits)
    for b in range(B):
        for t in range(T):
            if targets[b, t] == pad:
                continue
            row = [float(x) for x in logits[b, t]]
            m = max(row)
            lse = m + math.log(sum(math.exp(x - m) for x in row))
            q = [eps / V + (1 - eps) * (v == targets[b, t]) for v in range(V)]
            total += -sum(q[v] * (row[v] - lse) for v in range(V))
            grad[b, t] = [math.exp(row[v] - lse) - q[v] for v in range(V)]
            n += 1
    return total / n, grad / n


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_matches_a_loop_over_tokens(xp, dev, eps):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 6)) * 3
    targets = np.array([[1, 5, 3, 2], [4, 1, 0, 0], [0, 0, 0, 0]])      # a row of only padding
    loss, dlogits = cross_entropy(dev(logits), dev(targets), PAD, eps)
    ref_loss, ref_grad = ref_cross_entropy(logits, targets, PAD, eps)
    assert isinstance(loss, float) and abs(loss - ref_loss) <= 1e-12 * ref_loss
    np.testing.assert_allclose(to_numpy(dlogits), ref_grad, rtol=0, atol=1e-14)
    assert not to_numpy(dlogits)[targets == PAD].any(), "padding received gradient"


def test_padding_is_out_of_the_loss_and_the_count(xp, dev):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 3, 5))
    targets = np.array([[1, 2, 3], [4, 0, 0]])
    longer = np.concatenate([logits, rng.standard_normal((2, 2, 5))], axis=1)   # two more padded steps
    a, _ = cross_entropy(dev(logits), dev(targets), PAD, 0.1)
    b, _ = cross_entropy(dev(longer), dev(np.pad(targets, ((0, 0), (0, 2)))), PAD, 0.1)
    assert a == pytest.approx(b, rel=1e-15)


def test_uniform_logits_cost_log_v_whatever_the_smoothing(dev):
    for eps in (0.0, 0.3):
        loss, _ = cross_entropy(dev(np.zeros((1, 2, 7))), dev(np.array([[3, 5]])), PAD, eps)
        assert loss == pytest.approx(math.log(7), rel=1e-15)


@pytest.mark.parametrize("scale", [1000.0, 1e4])
def test_extreme_logits_stay_finite_and_right(dev, scale):
    logits = np.array([[[-scale, 1.0, 0.0], [scale, -scale, 0.0]]])
    targets = np.array([[2, 1]])
    loss, dlogits = cross_entropy(dev(logits), dev(targets), PAD, 0.1)
    ref_loss, ref_grad = ref_cross_entropy(logits, targets, PAD, 0.1)
    assert np.isfinite(loss) and np.isfinite(to_numpy(dlogits)).all()
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(to_numpy(dlogits), ref_grad, rtol=0, atol=1e-14)


def test_keeps_the_logits_dtype_and_backend(xp, dev):
    logits = dev(np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32))
    _, dlogits = cross_entropy(logits, np.array([[1, 2, 3], [1, 0, 0]]), PAD)
    assert dlogits.dtype == np.float32 and type(dlogits) is type(logits)


def test_log_softmax_normalises(dev):
    logp = to_numpy(log_softmax(dev(np.array([[-1000.0, 1.0, 3.0], [5.0, 5.0, 5.0]]))))
    np.testing.assert_allclose(np.exp(logp).sum(axis=-1), 1.0, rtol=1e-15)
    assert logp[1, 0] == pytest.approx(-math.log(3), rel=1e-15) and np.isfinite(logp).all()


@pytest.mark.parametrize("logits,targets,eps,message", [
    ((2, 3, 4), np.ones((2, 2), int), 0.0, r"^targets have shape \(2, 2\) but logits have \(B, T\) = \(2, 3\)\.$"),
    ((2, 3, 4), np.full((2, 3), 4), 0.0, r"^target ids contain 4, outside the vocabulary 0\.\.3\.$"),
    ((2, 3, 4), np.ones((2, 3)), 0.0, r"^target ids must be integers, got dtype float64\.$"),
    ((2, 3, 4), np.zeros((2, 3), int), 0.0,
     r"^the batch has no target token that is not padding, so its loss is undefined\.$"),
    ((2, 3, 4), np.ones((2, 3), int), 1.0, r"^label_smoothing must be a number in \[0, 1\), got 1\.0\.$"),
    ((2, 3, 4), np.ones((2, 3), int), None, r"^label_smoothing must be a number in \[0, 1\), got None\.$"),
    ((6, 4), np.ones((6,), int), 0.0, r"^logits must have shape \(B, T, V\), got \(6, 4\)\.$"),
])
def test_bad_input_gets_one_sentence(dev, logits, targets, eps, message):
    with pytest.raises(InputError, match=message):
        cross_entropy(dev(np.zeros(logits)), targets, PAD, eps)


def test_targets_may_live_on_the_device(xp, dev):
    logits = np.random.default_rng(3).standard_normal((1, 2, 5))
    a = cross_entropy(dev(logits), np.array([[1, 4]]))[0]
    b = cross_entropy(dev(logits), to_device(np.array([[1, 4]]), xp))[0]
    assert a == b
