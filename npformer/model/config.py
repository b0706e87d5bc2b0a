"""TransformerConfig: every size and choice of the model, checked before any array is made."""

from dataclasses import MISSING, asdict, dataclass, fields

import numpy as np

from npformer.errors import ConfigError, check_int, check_real
from npformer.layers.scores import SCORES

# Upper bounds, so a typo cannot ask for terabytes: the sizes of one field, and the parameters of
# the whole model (about 1 GB in float32; four times that with gradients and Adam's moments).
MAX_SIZE = {"src_vocab": 1_000_000, "tgt_vocab": 1_000_000, "d_model": 16_384, "n_heads": 1024,
            "d_ff": 65_536, "n_layers": 64, "max_len": 100_000}
MAX_PARAMETERS = 250_000_000


FLOAT_DTYPES = ("float16", "float32", "float64")


def check_float_dtype(dtype):
    """The name of a floating-point dtype a model may hold its weights in (given by name, as a
    NumPy type or as a dtype), or ConfigError."""
    name = np.dtype(dtype).name if isinstance(dtype, (type, np.dtype)) and issubclass(
        getattr(dtype, "type", dtype), np.generic) else dtype
    if not isinstance(name, str) or name not in FLOAT_DTYPES:
        raise ConfigError(f"dtype must be float16, float32 or float64, got {dtype!r}.")
    return name


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
        for name, high in MAX_SIZE.items():                      # NumPy integers become Python ints (JSON)
            setattr(self, name, check_int(name, getattr(self, name), 1, high))
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}).")
        self.dropout = check_real("dropout", self.dropout, 0.0, 1.0, below_high=True)
        n = self.n_parameters()
        if n > MAX_PARAMETERS:
            raise ConfigError(f"this model would hold about {n:,} parameters; the most npformer builds is "
                              f"{MAX_PARAMETERS:,}.")
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
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, (int, np.integer)) \
                or not 0 <= self.pad_id < min(self.src_vocab, self.tgt_vocab):
            raise ConfigError(f"pad_id {self.pad_id!r} is outside the vocabulary.")
        self.pad_id = int(self.pad_id)

    def n_parameters(self):
        """About how many numbers the model holds (the positional tables and matrices; biases
        and LayerNorms left out): what the memory it needs grows with."""
        D, F, L = self.d_model, self.d_ff, self.n_layers
        tables = (self.src_vocab + 2 * self.tgt_vocab + 2 * self.max_len) * D  # embeddings, output, positions
        return tables + L * (12 * D * D + 4 * D * F)             # encoder 4D^2 + 2DF, decoder 8D^2 + 2DF per layer
