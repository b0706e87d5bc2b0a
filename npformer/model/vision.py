"""Self-attention on images: an encoder-only classifier (the Vision Transformer's layout).
docs: derivations/vision.md

An image of H x W pixels with C channels becomes a sequence of N = (H/p)(W/p) vectors, each
one p x p patch with its C channels flattened (p = 1: every pixel is a token of C numbers).
Then the Transformer's own encoder reads it:

    tokens = Patches(image) W_e + b_e                             (B,N,D)
    x      = [cls; tokens] + P                                    (B,N+1,D)  learned class token, positions
    h      = Encoder(Dropout(x))                                  (B,N+1,D)  no mask: every patch sees every patch
    logits = LayerNorm(h_cls  or  mean_n h_n) W_h + b_h           (B,n_classes)

Nothing here is new but the patching and the class token; backward() runs the same pieces in
exactly the reverse order.
"""

from dataclasses import dataclass

import numpy as np

from npformer.backend import default_rng, get_backend, get_xp, to_device, to_numpy
from npformer.errors import ConfigError, InputError
from npformer.layers import (Dropout, Layer, LayerNorm, LearnedPositionalEncoding, Linear,
                             SinusoidalPositionalEncoding)
from npformer.layers.scores import SCORES
from npformer.model.config import DictConfig
from npformer.model.encoder import Encoder


@dataclass
class VisionConfig(DictConfig):
    image_size: int = 8               # images are image_size x image_size
    channels: int = 1                 # C
    patch: int = 2                    # p: patches of p x p pixels (1 = one token per pixel)
    n_classes: int = 10
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 128
    n_layers: int = 2
    dropout: float = 0.1
    norm: str = "pre"                 # pre-norm, as vision Transformers use
    pool: str = "cls"                 # "cls": the class token's output; "mean": the mean of the patches'
    positional: str = "learned"       # or "sinusoidal", or "none" (the encoder then sees a set of patches)
    activation: str = "gelu"          # or "relu"
    attention_score: str = "scaled_dot"

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name in ("image_size", "channels", "patch", "n_classes", "d_model", "n_heads", "d_ff", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if self.image_size % self.patch:
            raise ConfigError(f"image_size ({self.image_size}) must be divisible by patch ({self.patch}).")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}).")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}.")
        choices = {"norm": ("post", "pre"), "pool": ("cls", "mean"), "positional": ("learned", "sinusoidal", "none"),
                   "activation": ("relu", "gelu"), "attention_score": SCORES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}.")

    @property
    def grid(self):
        """Patches per side."""
        return self.image_size // self.patch



def patchify(images, p):
    """(B,H,W,C) -> (B,N,p*p*C): patches in row-major order, each flattened as (row, col, channel)."""
    B, H, W, C = images.shape
    x = images.reshape(B, H // p, p, W // p, p, C)              # (B,gh,p,gw,p,C)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(B, (H // p) * (W // p), p * p * C)  # (B,N,P)  (IMG-1)


def unpatchify(patches, p, H, W, C):
    """The inverse of patchify: (B,N,p*p*C) -> (B,H,W,C). A permutation, so it is also its backward."""
    B = patches.shape[0]
    x = patches.reshape(B, H // p, W // p, p, p, C)              # (B,gh,gw,p,p,C)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)     # (B,H,W,C)  (IMG-9)


class VisionTransformer(Layer):
    """forward(images (B,H,W,C) float) -> logits (B, n_classes); backward(dlogits) -> dimages."""

    kind = "vision"                   # the checkpoint header's "model"

    def __init__(self, cfg, seed=0, dtype="float32", backend=None):
        xp = get_backend(backend)
        super().__init__(xp, dtype)
        self.cfg = cfg = VisionConfig.checked(cfg)  # a dict (a checkpoint header) or a config
        self.seed = seed
        D, N = cfg.d_model, cfg.grid ** 2
        rng = np.random.default_rng(seed)                        # host generator: initial parameters
        self.drop_rng = default_rng(xp, seed + 1)                # backend generator: dropout masks
        common = dict(xp=xp, dtype=dtype)
        self.patch_embed = Linear(cfg.patch ** 2 * cfg.channels, D, rng, **common)
        self.add_param("cls", rng.normal(0.0, 0.02, size=D))     # (D,)  the class token
        self.pos = None                                          # "none": no positions at all
        if cfg.positional == "learned":
            self.pos = LearnedPositionalEncoding(N + 1, D, rng, **common)
        elif cfg.positional == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(N + 1, D, **common)
        self.drop = Dropout(cfg.dropout, self.drop_rng, **common)
        self.encoder = Encoder(cfg.n_layers, D, cfg.n_heads, cfg.d_ff, cfg.dropout, rng, self.drop_rng,
                               cfg.norm, cfg.activation, **common, score=cfg.attention_score)
        self.head_norm = LayerNorm(D, **common)
        self.head = Linear(D, cfg.n_classes, rng, **common)
        self.pack()                                              # every parameter into one flat array (layers/arena.py)

    def check_images(self, images):
        """Shape check at the boundary, then the images move to the backend in the model's dtype."""
        c = self.cfg
        want = (c.image_size, c.image_size, c.channels)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise InputError(f"images must have shape (B, {want[0]}, {want[1]}, {want[2]}), got {tuple(images.shape)}.")
        if get_xp(images) is not self.xp:
            images = to_device(images, self.xp)
        return images.astype(self.dtype)

    def forward(self, images, training=True):                    # images: (B,H,W,C)
        xp, c = self.xp, self.cfg
        images = self.check_images(images)
        B = images.shape[0]
        tokens = self.patch_embed.forward(patchify(images, c.patch))  # (B,N,D)  (IMG-2)
        cls = xp.broadcast_to(self.params["cls"], (B, 1, c.d_model))  # (B,1,D)
        x = xp.concatenate([cls, tokens], axis=1)                # (B,N+1,D)  (IMG-3)
        if self.pos is not None:
            x = self.pos.forward(x)                              # (B,N+1,D)
        x = self.drop.forward(x, training)                       # (B,N+1,D)
        h = self.encoder.forward(x, None, training)              # (B,N+1,D)  no mask: nothing is padding
        pooled = h[:, 0] if c.pool == "cls" else h[:, 1:].mean(axis=1)  # (B,D)  (IMG-4)
        self.cache = h.shape
        return self.head.forward(self.head_norm.forward(pooled))  # (B,n_classes)  (IMG-5)

    def backward(self, dlogits):                                 # dlogits: (B,n_classes)
        """Reverse of forward; returns dimages (B,H,W,C). Parameter gradients are added."""
        xp, c = self.xp, self.cfg
        B, N1, D = self.cache
        dpooled = self.head_norm.backward(self.head.backward(dlogits))  # (B,D)
        dh = xp.zeros((B, N1, D), dtype=dpooled.dtype)           # (B,N+1,D)  only the pooled rows get gradient
        if c.pool == "cls":
            dh[:, 0] = dpooled                                   # (B,D)  (IMG-6)
        else:
            dh[:, 1:] = dpooled[:, None, :] / (N1 - 1)           # (B,N,D)  the mean spreads it evenly  (IMG-6)
        dx = self.encoder.backward(dh)                           # (B,N+1,D)
        dx = self.drop.backward(dx)                              # (B,N+1,D)
        if self.pos is not None:
            dx = self.pos.backward(dx)                           # (B,N+1,D)
        self.grads["cls"] += dx[:, 0].sum(axis=0)                # (D,)  one token broadcast over B  (IMG-7)
        dpatches = self.patch_embed.backward(dx[:, 1:])          # (B,N,P)  (IMG-8)
        return unpatchify(dpatches, c.patch, c.image_size, c.image_size, c.channels)  # (B,H,W,C)  (IMG-9)

    # ------------------------------------------------------------------ use

    def predict(self, images, batch_size=256):
        """Host int array (B,): the most probable class of each image (evaluation mode)."""
        out = [self.forward(images[i:i + batch_size], training=False).argmax(axis=-1)
               for i in range(0, images.shape[0], batch_size)]   # (b,) each, on the backend
        return to_numpy(self.xp.concatenate(out))                # (B,)

    def class_attention(self, layer=-1):
        """After a forward: how the class token attends to the patches in one encoder layer,
        as (B, H, grid, grid) on the backend (heads kept apart; average them for one picture)."""
        A = self.encoder.layers[layer].self_attn.weights         # (B,H,N+1,N+1)
        g = self.cfg.grid
        return A[:, :, 0, 1:].reshape(A.shape[0], A.shape[1], g, g)  # (B,H,g,g)

    def save(self, path, extra=None, meta=None):
        """Write the parameters and config to `path` (.npz), atomically."""
        from npformer.model.checkpoint import save
        save(self, path, extra, meta)
