"""The model floor: encoder and decoder stacks, the whole Transformer, decoding, checkpoints."""

from npformer.model.checkpoint import CheckpointError, load
from npformer.model.config import TransformerConfig
from npformer.model.transformer import Transformer

__all__ = ["Transformer", "TransformerConfig", "load", "CheckpointError"]
