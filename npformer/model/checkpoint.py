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
from npformer.errors import NpformerError

FORMAT = "npformer-checkpoint-1"


class CheckpointError(NpformerError):
    """A checkpoint that is missing, truncated, foreign or does not fit the model."""


def save(model, path, extra=None, meta=None):
    """Write model parameters (and optional extra arrays / JSON-able meta) to `path` atomically."""
    path = os.fspath(path)
    arrays = {f"param/{k}": to_numpy(v) for k, v in model.parameters().items()}
    for k, v in (extra or {}).items():
        arrays[f"extra/{k}"] = np.asarray(v)
    header = {"format": FORMAT, "config": model.cfg.to_dict(), "dtype": str(model.dtype), "meta": meta or {}}
    arrays["header"] = np.array(json.dumps(header))
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
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
        header = json.loads(str(files.pop("header")))
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not a readable npformer checkpoint (truncated or another kind of file).") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an npformer checkpoint (format {header.get('format')!r}).")
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
    """A Transformer with the parameters and config saved at `path`, on `backend`."""
    from npformer.model.transformer import Transformer
    header, params, _ = read(path)
    model = Transformer(header["config"], dtype=dtype or header.get("dtype", "float32"), backend=backend)
    load_into(model, params, path)
    return model
