"""The vision encoder: patches against a loop, the class token's attention, shapes and
errors, checkpoints, and a tiny learnable problem. (Finite-difference checks of every input
and parameter are in gradcheck_cases.BEYOND_CASES.)"""

import numpy as np
import pytest

from npformer.errors import ConfigError, InputError
from npformer.loss import cross_entropy
from npformer.model import load
from npformer.model.vision import VisionConfig, VisionTransformer, patchify, unpatchify


def small(**kw):
    base = dict(image_size=4, channels=2, patch=2, n_classes=3, d_model=8, n_heads=2, d_ff=12, n_layers=1,
                dropout=0.0)
    base.update(kw)
    return VisionConfig(**base)


def test_patches_against_a_loop(xp, dev, host):
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3))
    P = host(patchify(dev(x), 3))                               # (2,4,27)
    for b in range(2):
        n = 0
        for gi in range(2):
            for gj in range(2):
                block = x[b, 3 * gi:3 * gi + 3, 3 * gj:3 * gj + 3, :]  # (p,p,C), flattened row, col, channel
                assert np.array_equal(P[b, n], block.reshape(-1))
                n += 1
    assert np.array_equal(host(unpatchify(dev(P), 3, 6, 6, 3)), x)


def test_pixels_are_tokens_with_patch_one(xp, dev, host):
    x = np.random.default_rng(1).standard_normal((1, 3, 3, 2))
    assert np.array_equal(host(patchify(dev(x), 1))[0], x[0].reshape(9, 2))


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_shapes_and_class_attention(xp, dev, host, pool):
    m = VisionTransformer(small(pool=pool), backend=xp, dtype="float64")
    x = np.random.default_rng(2).standard_normal((5, 4, 4, 2))
    logits = m.forward(x)
    assert logits.shape == (5, 3)
    att = host(m.class_attention())                              # (B,H,grid,grid)
    assert att.shape == (5, 2, 2, 2)
    full = host(m.encoder.layers[-1].self_attn.weights)[:, :, 0]  # the class token's row, cls included
    np.testing.assert_allclose(full.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(att > 0) and np.all(att.sum(axis=(-1, -2)) < 1.0)
    m.zero_grad()
    dx = m.backward(dev(np.ones((5, 3))))
    assert dx.shape == (5, 4, 4, 2)


def test_the_class_token_is_one_vector_for_every_image(xp):
    m = VisionTransformer(small(), backend=xp)
    assert m.parameters()["cls"].shape == (8,)
    assert "pos.P" in m.parameters() and m.parameters()["pos.P"].shape == (5, 8)  # 4 patches + the class token


def test_bad_shapes_are_refused():
    m = VisionTransformer(small())
    with pytest.raises(InputError, match=r"images must have shape \(B, 4, 4, 2\)"):
        m.forward(np.zeros((2, 4, 4)))
    with pytest.raises(ConfigError, match="divisible by patch"):
        VisionConfig(image_size=5, patch=2)
    with pytest.raises(ConfigError, match="pool must be one of"):
        VisionConfig(pool="max")


def test_checkpoint_rebuilds_the_vision_model(xp, host, tmp_path):
    m = VisionTransformer(small(attention_score="cosine"), backend=xp)
    m.save(tmp_path / "v.npz")
    back = load(tmp_path / "v.npz", backend=xp)
    assert isinstance(back, VisionTransformer) and back.cfg == m.cfg
    x = np.random.default_rng(3).standard_normal((2, 4, 4, 2))
    np.testing.assert_allclose(host(back.forward(x, training=False)), host(m.forward(x, training=False)), rtol=1e-6)


def test_learns_where_the_bright_patch_is(xp):
    """Three classes: which of three patches holds the bright spot. Needs position, so it needs
    the positional encoding and attention from the class token."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=96)
    x = 0.1 * rng.standard_normal((96, 4, 4, 2))
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, 2 * r:2 * r + 2, 2 * col:2 * col + 2, :] += 1.0
    m = VisionTransformer(small(), backend=xp, dtype="float64")
    params, grads = m.parameters(), m.gradients()
    for step in range(60):
        loss, d = cross_entropy(m.forward(x)[:, None, :], y[:, None], pad_id=-1)
        m.zero_grad()
        m.backward(d[:, 0, :])
        for k in params:
            params[k] -= 0.3 * grads[k]
    assert (m.predict(x) == y).mean() > 0.95, loss


def test_without_positions_the_patches_are_a_set():
    """positional="none": the encoder has no way to know where a patch was, so shuffling the
    patches of an image leaves the class scores unchanged (up to rounding)."""
    rng = np.random.default_rng(0)
    model = VisionTransformer(VisionConfig(positional="none", dropout=0.0), seed=0, backend="numpy", dtype="float64")
    images = rng.random((3, 8, 8, 1))
    patches = patchify(images, 2)                                # (B,N,P)
    shuffled = unpatchify(patches[:, rng.permutation(patches.shape[1])], 2, 8, 8, 1)
    np.testing.assert_allclose(model.forward(shuffled, training=False), model.forward(images, training=False),
                               rtol=1e-10, atol=1e-12)
    with_pos = VisionTransformer(VisionConfig(dropout=0.0), seed=0, backend="numpy", dtype="float64")
    assert not np.allclose(with_pos.forward(shuffled, training=False), with_pos.forward(images, training=False))
