"""The layers of the Transformer, each with a hand-written forward and backward."""

from npformer.layers.attention import MultiHeadAttention, ScaledDotProductAttention
from npformer.layers.base import Layer
from npformer.layers.dropout import Dropout
from npformer.layers.embedding import Embedding, TokenError, check_ids
from npformer.layers.feedforward import FeedForward
from npformer.layers.layernorm import LayerNorm
from npformer.layers.linear import Linear, linear_backward
from npformer.layers.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from npformer.layers.softmax import MASK_FILL, Softmax, softmax, softmax_backward
from npformer.layers.sublayer import SublayerConnection

__all__ = [
    "Layer", "Linear", "linear_backward", "Embedding", "TokenError", "check_ids",
    "SinusoidalPositionalEncoding", "LearnedPositionalEncoding", "Dropout", "Softmax", "softmax",
    "softmax_backward", "MASK_FILL", "ScaledDotProductAttention", "MultiHeadAttention",
    "LayerNorm", "FeedForward", "SublayerConnection",
]
