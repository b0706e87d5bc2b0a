"""Adam against a hand-computed step, the schedules at known steps, global-norm clipping."""

import math

import numpy as np
import pytest

from npformer.train.optim import Adam, clip_grad_norm, learning_rate, paper_lr, warmup_constant_lr


def _adam_reference(p, grads, lrs, b1=0.9, b2=0.98, eps=1e-9):
    """Textbook Adam, one scalar at a time, in float64 Python floats."""
    p = [float(x) for x in p]
    m, v = [0.0] * len(p), [0.0] * len(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        for i in range(len(p)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            p[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return p, m, v


def test_adam_first_step_by_hand(dev, host):
    # step 1: m = 0.1 g, v = 0.02 g^2, so m_hat = g, v_hat = g^2 and p moves by lr * g / (|g| + eps)
    p = dev(np.array([1.0, -2.0, 0.5], dtype=np.float64))
    g = dev(np.array([0.5, -4.0, 0.0], dtype=np.float64))
    adam = Adam({"w": p})
    adam.step({"w": g}, lr=0.1)
    np.testing.assert_allclose(host(p), [1.0 - 0.1 * 0.5 / (0.5 + 1e-9), -2.0 + 0.1 * 4.0 / (4.0 + 1e-9), 0.5],
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(host(adam.m["w"]), [0.05, -0.4, 0.0])
    np.testing.assert_allclose(host(adam.v["w"]), [0.02 * 0.25, 0.02 * 16.0, 0.0])


def test_adam_matches_reference_over_steps_in_place(dev, host):
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=5)
    grads = [rng.normal(size=5) for _ in range(4)]
    p = dev(p0.copy())
    adam = Adam({"w": p}, betas=(0.9, 0.98), eps=1e-9)
    for t, g in enumerate(grads, start=1):
        adam.step({"w": dev(g)}, lr=0.01 * t)                    # lr changes per step, as with a schedule
    q, m, v = _adam_reference(p0, grads, [0.01 * t for t in range(1, 5)])
    np.testing.assert_allclose(host(p), q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(adam.v["w"]), v, rtol=1e-12)
    assert adam.params["w"] is p and adam.t == 4                 # the live array was updated in place


def test_adam_block_by_block_is_the_same_update(dev, host):
    """On the CPU the update runs over blocks of rows; with blocks of one row, also of a
    strided view (as MHA's Wq is a view into Wqkv), every element still gets the textbook step."""
    rng = np.random.default_rng(5)
    packed = dev(rng.normal(size=(7, 9)))
    params = {"view": packed[:, 3:6], "vector": dev(rng.normal(size=11))}
    before = host(packed).copy()
    p0 = {k: host(p).copy() for k, p in params.items()}
    grads = [{k: dev(rng.normal(size=p.shape)) for k, p in params.items()} for _ in range(3)]
    adam = Adam(params)
    adam.block_size = 4                                          # rows of the view are 3 elements: one row a block
    for g in grads:
        adam.step(g, lr=0.01)
    for k in params:
        q, _, _ = _adam_reference(p0[k].ravel(), [host(g[k]).ravel() for g in grads], [0.01] * 3)
        np.testing.assert_allclose(host(params[k]).ravel(), q, rtol=1e-12, atol=1e-14)
    after = host(packed)
    np.testing.assert_array_equal(after[:, 3:6], host(params["view"]))  # updated through the view
    np.testing.assert_array_equal(np.delete(after, [3, 4, 5], axis=1), np.delete(before, [3, 4, 5], axis=1))


def test_adam_state_round_trip(dev, host):
    rng = np.random.default_rng(0)
    a = Adam({"w": dev(rng.normal(size=(2, 3)).astype(np.float32))})
    a.step({"w": dev(rng.normal(size=(2, 3)).astype(np.float32))}, lr=1e-3)
    state = {"step": a.t, "m": {"w": host(a.m["w"])}, "v": {"w": host(a.v["w"])}}
    b = Adam({"w": dev(np.zeros((2, 3), dtype=np.float32))})
    b.load_state_dict(state)
    assert b.t == 1
    np.testing.assert_array_equal(host(b.m["w"]), host(a.m["w"]))
    np.testing.assert_array_equal(host(b.v["w"]), host(a.v["w"]))


def test_paper_schedule_at_known_steps():
    d, w = 512, 4000
    assert paper_lr(1, d, w) == pytest.approx(512 ** -0.5 * 4000 ** -1.5)          # 1.747e-07
    assert paper_lr(4000, d, w) == pytest.approx(6.987712429686844e-04)            # the peak, at step = warmup
    assert paper_lr(16000, d, w) == pytest.approx(512 ** -0.5 / 126.49110640673517)  # 3.494e-04
    assert paper_lr(2000, d, w) == pytest.approx(paper_lr(4000, d, w) / 2)          # linear before the peak
    assert paper_lr(4000, d, w, factor=2.0) == pytest.approx(2 * 6.987712429686844e-04)
    assert learning_rate(4000, "paper", 2.0, w, d) == paper_lr(4000, d, w, factor=2.0 * math.sqrt(d * w))


def test_training_schedule_peaks_at_lr():
    """LR-3: the factor is chosen so the peak, at step = warmup, is the `lr` asked for; the
    paper's own numbers (d 512, warmup 4000, k = 1) are lr = 7.0e-4."""
    assert learning_rate(200, "paper", 1e-3, 200, 128) == pytest.approx(1e-3)
    assert learning_rate(100, "paper", 1e-3, 200, 128) == pytest.approx(5e-4)          # linear warm-up
    assert learning_rate(2000, "paper", 1e-3, 200, 128) == pytest.approx(1e-3 * math.sqrt(0.1))  # 1/sqrt(step)
    assert learning_rate(16000, "paper", 6.987712429686844e-04, 4000, 512) == pytest.approx(paper_lr(16000, 512, 4000))


def test_warmup_to_constant_at_known_steps():
    assert warmup_constant_lr(1, 1e-3, 200) == pytest.approx(5e-6)
    assert warmup_constant_lr(100, 1e-3, 200) == pytest.approx(5e-4)
    assert warmup_constant_lr(200, 1e-3, 200) == pytest.approx(1e-3)
    assert warmup_constant_lr(3999, 1e-3, 200) == pytest.approx(1e-3)
    assert warmup_constant_lr(1, 1e-3, 0) == 1e-3
    assert learning_rate(50, "constant", 1e-3, 200, 128) == warmup_constant_lr(50, 1e-3, 200)


def test_clip_grad_norm_scales_to_the_bound(dev, host):
    grads = {"a": dev(np.array([3.0, 4.0])), "b": dev(np.array([[12.0]]))}   # global norm 13
    norm = clip_grad_norm(grads, 6.5)
    assert float(norm) == pytest.approx(13.0)
    np.testing.assert_allclose(host(grads["a"]), [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(host(grads["b"]), [[6.0]], rtol=1e-6)
    after = math.sqrt(sum(float((host(g) ** 2).sum()) for g in grads.values()))
    assert after == pytest.approx(6.5, rel=1e-6)


def test_clip_grad_norm_leaves_small_gradients_and_zero_bound_alone(dev, host):
    grads = {"a": dev(np.array([0.3, 0.4]))}
    assert float(clip_grad_norm(grads, 1.0)) == pytest.approx(0.5)
    np.testing.assert_allclose(host(grads["a"]), [0.3, 0.4])
    big = {"a": dev(np.array([30.0, 40.0]))}
    assert float(clip_grad_norm(big, 0)) == pytest.approx(50.0)    # 0: measure only
    np.testing.assert_allclose(host(big["a"]), [30.0, 40.0])
