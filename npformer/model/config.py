"""TransformerConfig: every size and choice of the model, checked before any array is made."""

import numbers
from dataclasses import MISSING, asdict, dataclass, fields

from npformer.errors import ConfigError
from npformer.layers.scores import SCORES


class DictConfig:
    """to_dict / from_dict for a dataclass of settings (the JSON of a checkpoint's header), with
    one clear sentence for a non-dict, unknown keys or missing keys."""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ConfigError(f"a configuration must be a dict of settings, got {type(d).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}.")
        missing = {f.name for f in fields(cls) if f.default is MISSING} - set(d)
        if missing:
            raise ConfigError(f"the configuration lacks {', '.join(sorted(missing))}.")
        return cls(**d)

    @classmethod
    def checked(cls, cfg):
        """cfg as a validated instance: a dict (a checkpoint's header) is read with from_dict
        first, then validate() raises ConfigError for any setting that cannot work."""
        cfg = cls.from_dict(cfg) if isinstance(cfg, dict) else cfg
        cfg.validate()
        return cfg


@dataclass
class TransformerConfig(DictConfig):
    src_vocab: int
    tgt_vocab: int
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 512
    n_layers: int = 2
    dropout: float = 0.1
    max_len: int = 512
    norm: str = "post"                # "post" (the paper) or "pre"
    positional: str = "sinusoidal"    # or "learned"
    tie_embeddings: bool = False      # one matrix for both embeddings and the output projection
    pad_id: int = 0
    activation: str = "relu"          # or "gelu"
    attention_score: str = "scaled_dot"  # or "dot", "general", "additive", "cosine" (layers/scores.py)

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name in ("src_vocab", "tgt_vocab", "d_model", "n_heads", "d_ff", "n_layers", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}).")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real) \
                or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a number in [0, 1), got {self.dropout!r}.")
        if not isinstance(self.tie_embeddings, bool):
            raise ConfigError(f"tie_embeddings must be True or False, got {self.tie_embeddings!r}.")
        choices = {"norm": ("post", "pre"), "positional": ("sinusoidal", "learned"), "activation": ("relu", "gelu"),
                   "attention_score": SCORES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}.")
        if self.tie_embeddings and self.src_vocab != self.tgt_vocab:
            raise ConfigError(f"tie_embeddings needs one vocabulary, but src_vocab={self.src_vocab} "
                              f"and tgt_vocab={self.tgt_vocab}.")
        if not isinstance(self.pad_id, int) or isinstance(self.pad_id, bool) \
                or not 0 <= self.pad_id < min(self.src_vocab, self.tgt_vocab):
            raise ConfigError(f"pad_id {self.pad_id!r} is outside the vocabulary.")
