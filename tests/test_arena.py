"""The parameter arena (layers/arena.py): every model keeps its parameters in one flat array and
their gradients in a second, and the named arrays are views of them."""

import numpy as np
import pytest

import npformer as nf
from npformer.backend import OperationCount, to_numpy
from npformer.model.rnn import RNNSeq2Seq
from npformer.model.vision import VisionTransformer
from npformer.train.optim import Adam, clip_grad_norm

TRANSFORMER = dict(src_vocab=11, tgt_vocab=11, d_model=8, n_heads=2, d_ff=16, n_layers=2, max_len=10)
MODELS = {
    "transformer": lambda xp: nf.Transformer(TRANSFORMER, seed=1, backend=xp),
    "transformer, tied, learned positions, general score": lambda xp: nf.Transformer(
        {**TRANSFORMER, "tie_embeddings": True, "positional": "learned", "attention_score": "general"},
        seed=1, backend=xp),
    "rnn-attention": lambda xp: RNNSeq2Seq(dict(src_vocab=11, tgt_vocab=11, d_embed=6, d_hidden=8,
                                                attention="bahdanau", d_attn=5), seed=1, backend=xp),
    "vision": lambda xp: VisionTransformer(dict(d_model=8, n_heads=2, d_ff=16, n_layers=1), seed=1, backend=xp),
}


@pytest.mark.parametrize("kind", MODELS)
def test_every_parameter_and_gradient_is_a_view_of_the_arena(xp, kind):
    model = MODELS[kind](xp)
    params, grads = model.parameters(), model.gradients()
    assert model.arena.size == sum(p.size for p in params.values())     # each parameter once, tied ones too
    before = {k: to_numpy(p).copy() for k, p in params.items()}
    model.arena.params[...] = model.arena.params * 2.0 + 1.0     # written through the flat array ...
    model.arena.grads.fill(3.0)
    for k, p in params.items():                                  # ... and seen through every named view
        np.testing.assert_allclose(to_numpy(p), before[k] * 2.0 + 1.0, rtol=1e-6, err_msg=k)
        assert (to_numpy(grads[k]) == 3.0).all(), k
    model.zero_grad()
    assert not any(to_numpy(g).any() for g in model.gradients().values())


def test_views_name_a_flat_array_as_parameters_does(xp):
    model = MODELS["transformer, tied, learned positions, general score"](xp)
    views = model.arena.views(model.arena.grads)
    assert list(views) == list(model.parameters())
    assert all(views[k].shape == p.shape for k, p in model.parameters().items())
    attn = model.encoder.layers[0].self_attn
    attn.params["Wk"][...] = 5.0                                 # Wk is the middle third of Wqkv's columns
    assert (to_numpy(attn.Wqkv)[:, 8:16] == 5.0).all() and not (to_numpy(attn.Wqkv)[:, :8] == 5.0).any()


def test_the_optimiser_is_a_handful_of_operations_whatever_the_number_of_parameters():
    """zero_grad one fill, clipping one norm and one scale, Adam twelve passes: over the flat
    arena, not once per parameter (counted on the strict backend)."""
    for n_layers in (1, 4):
        model = nf.Transformer({**TRANSFORMER, "n_layers": n_layers}, backend="strict")
        adam = Adam(model.arena)
        adam.block_size = None                                   # as on a GPU
        with OperationCount() as zero:
            model.zero_grad()
        with OperationCount() as clip:
            clip_grad_norm(model.arena.grads, 1.0)
        with OperationCount() as update:
            adam.step(1e-3)
        assert (zero.n, clip.n, update.n) == (1, 6, 12), (n_layers, zero.n, clip.n, update.n)
