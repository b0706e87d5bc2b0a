"""Checkpoints: one .npz of host arrays plus the config as JSON, never pickles.

Written to a temporary file in the same directory and renamed over the target, so a crash
mid-save leaves the previous checkpoint whole. Loaded with allow_pickle=False, so opening a
checkpoint can never run code. A checkpoint saved on one backend loads on any other.
"""

import json
import os
import zipfile

import numpy as np

from npformer.backend import to_device, to_numpy
from npformer.errors import ConfigError, NpformerError

FORMAT = "npformer-checkpoint-1"


class CheckpointError(NpformerError):
    """A checkpoint that is missing, truncated, foreign or does not fit the model."""


def save(model, path, extra=None, meta=None):
    """Write model parameters (and optional extra arrays / JSON-able meta) to `path` atomically."""
    path = os.fspath(path)
    arrays = {f"param/{k}": to_numpy(v) for k, v in model.parameters().items()}
    for k, v in (extra or {}).items():
        arrays[f"extra/{k}"] = np.asarray(v)
        if arrays[f"extra/{k}"].dtype.hasobject:                 # would be pickled, and never load again
            raise CheckpointError(f"extra array {k!r} holds Python objects; a checkpoint keeps numbers and text only.")
    header = {"format": FORMAT, "model": getattr(model, "kind", "transformer"), "config": model.cfg.to_dict(),
              "dtype": str(model.dtype), "meta": meta or {}}
    try:
        arrays["header"] = np.array(json.dumps(header))
    except TypeError as e:
        raise CheckpointError(f"the checkpoint's meta must be JSON data ({e}).") from None
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                                    # atomic on POSIX and Windows
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read(path):
    """path -> (header dict, {name: param array}, {name: extra array}), all on the host."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}.")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file.")
    try:
        z = np.load(path, allow_pickle=False)                    # never unpickles: loading runs no code
        if not hasattr(z, "files"):                              # a lone .npy array, not an .npz archive
            raise ValueError
        with z:
            files = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise CheckpointError(f"{path} is not a readable npformer checkpoint (truncated or another kind of file).") from None
    try:
        header = json.loads(str(files.pop("header")))
    except (KeyError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = f"format {header.get('format')!r}" if isinstance(header, dict) else "no npformer header"
        raise CheckpointError(f"{path} is not an npformer checkpoint ({found}).")
    params = {k[len("param/"):]: v for k, v in files.items() if k.startswith("param/")}
    extra = {k[len("extra/"):]: v for k, v in files.items() if k.startswith("extra/")}
    return header, params, extra


def load_into(model, params, path="checkpoint"):
    """Copy host arrays into the model's live parameters, checking names and shapes."""
    live = model.parameters()
    missing, unexpected = set(live) - set(params), set(params) - set(live)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}.")
    for name, p in live.items():
        if tuple(params[name].shape) != tuple(p.shape):
            raise CheckpointError(f"{path}: {name} has shape {params[name].shape}, the model expects {p.shape}.")
        p[...] = to_device(params[name].astype(p.dtype), model.xp)


def load(path, backend=None, dtype=None):
    """The model (a Transformer, or the class the header's "model" names) saved at `path`, on `backend`."""
    header, params, _ = read(path)
    model_class = _model_class(header.get("model", "transformer"), path)
    try:
        model = model_class(header["config"], dtype=dtype or header.get("dtype", "float32"), backend=backend)
    except (KeyError, TypeError, ConfigError) as e:              # an edited or damaged header
        reason = str(e).rstrip(".")
        raise CheckpointError(f"{path} holds a configuration this npformer cannot build ({reason}).") from None
    load_into(model, params, path)
    return model


def _model_class(kind, path):
    """The class a header's "model" names (headers written before the key existed: the Transformer)."""
    if kind == "transformer":
        from npformer.model.transformer import Transformer
        return Transformer
    if kind == "rnn":
        from npformer.model.rnn import RNNSeq2Seq
        return RNNSeq2Seq
    if kind == "vision":
        from npformer.model.vision import VisionTransformer
        return VisionTransformer
    raise CheckpointError(f"{path} holds a model of kind {kind!r}, which this npformer cannot build.")
