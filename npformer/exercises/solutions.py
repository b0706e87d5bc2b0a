"""The reference solutions: each exercise's template class, its backward done by npformer's own
layer. The checker compares a learner's forward with these and builds its hints from their
gradients; the tests hold that every one of them passes its own check.
"""

import numpy as np

from npformer import layers
from npformer.exercises.templates import (attention, cross_entropy, dropout, embedding, encoder_layer,
                                          feedforward, gru, layernorm, linear, multihead, softmax, sublayer,
                                          transformer)
from npformer.layers.gru import GRU as PackageGRU
from npformer.loss import cross_entropy as package_cross_entropy
from npformer.model import Transformer as PackageTransformer
from npformer.model.encoder import EncoderLayer as PackageEncoderLayer

F64 = dict(xp="numpy", dtype="float64")


class Delegate:
    """forward and backward run by `self.layer`, a package layer whose parameter and gradient
    dicts this object takes as its own (so the checker's values and gradients are the layer's)."""

    def adopt(self, layer):
        self.layer = layer
        self.params, self.grads = layer.params, layer.grads

    def forward(self, *args, **kwargs):
        out = self.layer.forward(*args, **kwargs)
        self.cache = self.layer.cache
        return out

    def backward(self, dout):
        return self.layer.backward(dout)


class Linear(Delegate, linear.Linear):
    def __init__(self, d_in, d_out, rng=None):
        super().__init__(d_in, d_out, rng)
        self.adopt(layers.Linear(d_in, d_out, np.random.default_rng(0), **F64))


class Softmax(Delegate, softmax.Softmax):
    def __init__(self):
        super().__init__()
        self.adopt(layers.Softmax(**F64))


class CrossEntropy(cross_entropy.CrossEntropy):
    def forward(self, logits, targets):
        self.inputs = (logits, targets)
        return super().forward(logits, targets)

    def backward(self, dout=1.0):
        _, dlogits = package_cross_entropy(*self.inputs, self.pad_id, self.label_smoothing)
        return dlogits * dout


class ScaledDotProductAttention(Delegate, attention.ScaledDotProductAttention):
    def __init__(self):
        super().__init__()
        self.adopt(layers.ScaledDotProductAttention(**F64))

    def forward(self, q, k, v, keep=None):
        return super().forward(q, k, v, keep)[0]                 # the package's also returns A


class LayerNorm(Delegate, layernorm.LayerNorm):
    def __init__(self, d_model, eps=1e-5):
        super().__init__(d_model, eps)
        self.adopt(layers.LayerNorm(d_model, eps, **F64))


class Embedding(Delegate, embedding.Embedding):
    def __init__(self, vocab, d_model, rng=None):
        super().__init__(vocab, d_model, rng)
        self.adopt(layers.Embedding(vocab, d_model, np.random.default_rng(0), **F64))


class Dropout(Delegate, dropout.Dropout):
    def __init__(self, p, rng=None):
        super().__init__(p, rng)
        self.adopt(layers.Dropout(p, self.rng, **F64))

    @property
    def frozen(self):
        return self.layer.frozen

    @frozen.setter
    def frozen(self, value):
        if hasattr(self, "layer"):
            self.layer.frozen = value


class FeedForward(Delegate, feedforward.FeedForward):
    def __init__(self, d_model, d_ff, rng=None):
        super().__init__(d_model, d_ff, rng)
        self.adopt(layers.FeedForward(d_model, d_ff, np.random.default_rng(0), "relu", **F64))


class MultiHeadAttention(Delegate, multihead.MultiHeadAttention):
    def __init__(self, d_model, n_heads, rng=None):
        super().__init__(d_model, n_heads, rng)
        self.adopt(layers.MultiHeadAttention(d_model, n_heads, np.random.default_rng(0), **F64))


class SublayerConnection(sublayer.SublayerConnection):
    def backward(self, dout):                                    # the three lines of layers/sublayer.py, reversed
        conn = layers.SublayerConnection(self.norm, self.dropout, self.position)
        dx, ds = conn.backward_output(dout)
        return dx + conn.backward_input(self.sublayer.backward(ds))


class EncoderLayer(encoder_layer.EncoderLayer):
    def __init__(self, d_model, n_heads, d_ff, dropout, norm="post", rng=None):
        super().__init__(d_model, n_heads, d_ff, dropout, norm, rng)
        self._sub1 = layers.SublayerConnection(self.norm1, self.drop1, self.norm_position)
        self._sub2 = layers.SublayerConnection(self.norm2, self.drop2, self.norm_position)

    backward = PackageEncoderLayer.backward


class GRU(gru.GRU):
    xp = np                                                      # the package's GRU reads self.xp
    step_backward = PackageGRU.step_backward
    backward = PackageGRU.backward


class Transformer(transformer.Transformer):
    backward = PackageTransformer.backward


SOLUTIONS = {"linear": Linear, "softmax": Softmax, "cross_entropy": CrossEntropy,
             "attention": ScaledDotProductAttention, "layernorm": LayerNorm, "embedding": Embedding,
             "dropout": Dropout, "feedforward": FeedForward, "multihead": MultiHeadAttention,
             "sublayer": SublayerConnection, "encoder_layer": EncoderLayer, "gru": GRU,
             "transformer": Transformer}
