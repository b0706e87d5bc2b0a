"""Adam against a hand-computed step, the schedules at known steps, global-norm clipping."""

import math

import numpy as np
import pytest

from npformer.layers import Layer
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


def _packed(xp, dtype="float64", **arrays):
    """A layer whose parameters are these host arrays, packed into an arena as a model's are."""
    layer = Layer(xp, dtype)
    for name, a in arrays.items():
        layer.add_param(name, a)
    layer.pack()
    return layer


def test_adam_first_step_by_hand(xp, dev, host):
    # step 1: m = 0.1 g, v = 0.02 g^2, so m_hat = g, v_hat = g^2 and p moves by lr * g / (|g| + eps)
    layer = _packed(xp, w=np.array([1.0, -2.0, 0.5]))
    layer.grads["w"][...] = dev(np.array([0.5, -4.0, 0.0]))
    adam = Adam(layer.arena)
    adam.step(lr=0.1)
    np.testing.assert_allclose(host(layer.params["w"]), [1.0 - 0.1 * 0.5 / (0.5 + 1e-9), -2.0 + 0.1 * 4.0 / (4.0 + 1e-9), 0.5],
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(host(adam.m["w"]), [0.05, -0.4, 0.0])
    np.testing.assert_allclose(host(adam.v["w"]), [0.02 * 0.25, 0.02 * 16.0, 0.0])


def test_adam_matches_reference_over_steps_in_place(xp, dev, host):
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=5)
    grads = [rng.normal(size=5) for _ in range(4)]
    layer = _packed(xp, w=p0)
    p = layer.params["w"]
    adam = Adam(layer.arena, betas=(0.9, 0.98), eps=1e-9)
    for t, g in enumerate(grads, start=1):
        layer.grads["w"][...] = dev(g)
        adam.step(lr=0.01 * t)                                   # lr changes per step, as with a schedule
    q, m, v = _adam_reference(p0, grads, [0.01 * t for t in range(1, 5)])
    np.testing.assert_allclose(host(p), q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(adam.v["w"]), v, rtol=1e-12)
    assert layer.params["w"] is p and adam.t == 4                # the live array was updated in place


def test_adam_block_by_block_is_the_same_update(xp, dev, host):
    """On the CPU the update runs over blocks of the flat arena; with blocks that cut through
    parameters, and a parameter that is a strided view of its block (as MHA's Wq is of Wqkv),
    every element still gets the textbook step."""
    rng = np.random.default_rng(5)
    p0 = {"packed": rng.normal(size=(7, 9)), "vector": rng.normal(size=11)}
    layer = _packed(xp, **p0)
    view = layer.params["packed"][:, 3:6]                       # (7,3)  strided, like Wq in Wqkv
    grads = [{k: rng.normal(size=p.shape) for k, p in p0.items()} for _ in range(3)]
    adam = Adam(layer.arena)
    adam.block_size = 4                                          # 74 elements: 19 blocks, across rows and parameters
    for g in grads:
        for k in g:
            layer.grads[k][...] = dev(g[k])
        adam.step(lr=0.01)
    for k in p0:
        q, _, _ = _adam_reference(p0[k].ravel(), [g[k].ravel() for g in grads], [0.01] * 3)
        np.testing.assert_allclose(host(layer.params[k]).ravel(), q, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(host(view), host(layer.params["packed"])[:, 3:6])  # updated through the view
    assert layer.arena.size == 74 and adam.flat_m.shape == (74,)


def test_adam_state_is_shown_by_name_and_round_trips(xp, dev, host):
    rng = np.random.default_rng(0)
    a = _packed(xp, "float32", w=rng.normal(size=(2, 3)), b=rng.normal(size=4))
    a.grads["w"][...] = dev(rng.normal(size=(2, 3)).astype(np.float32))
    adam_a = Adam(a.arena)
    adam_a.step(lr=1e-3)
    assert set(adam_a.m) == {"w", "b"} and adam_a.m["w"].shape == (2, 3)   # views of the flat moments
    state = {"step": adam_a.t, "m": {k: host(m) for k, m in adam_a.m.items()}, "v": {k: host(v) for k, v in adam_a.v.items()}}
    b = _packed(xp, "float32", w=np.zeros((2, 3)), b=np.zeros(4))
    adam_b = Adam(b.arena)
    adam_b.load_state_dict(state)
    assert adam_b.t == 1
    np.testing.assert_array_equal(host(adam_b.flat_m), host(adam_a.flat_m))
    np.testing.assert_array_equal(host(adam_b.flat_v), host(adam_a.flat_v))


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


def test_clip_grad_norm_of_a_flat_array_is_the_norm_of_its_parts(dev, host):
    flat = dev(np.array([3.0, 4.0, 12.0]))                       # a gradient arena: (3, 4) and (12,) side by side
    norm = clip_grad_norm(flat, 6.5)
    assert float(norm) == pytest.approx(13.0)
    np.testing.assert_allclose(host(flat), [1.5, 2.0, 6.0], rtol=1e-6)
