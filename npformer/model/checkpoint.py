"""Checkpoints: one .npz of host arrays plus the config as JSON, never pickles.

Written to a temporary file in the same directory and renamed over the target, so a crash
mid-save leaves the previous checkpoint whole; temporary files that a killed save left behind
are removed by the next save. Loaded with allow_pickle=False, so opening a checkpoint can never
run code. A checkpoint saved on one backend loads on any other.

Reading trusts nothing in the file: the header is read first, then every member's declared
shape and dtype (an .npy member states them before its data), and only when each parameter
has the shape the header's config implies, and the whole fits what that model needs, is any
array read; non-finite weights are refused.
"""

import glob
import json
import math
import os
import zipfile
import zlib

import numpy as np

from npformer.backend import to_device, to_numpy
from npformer.errors import ConfigError, NpformerError, StorageError, os_reason
from npformer.model.config import FLOAT_DTYPES, check_float_dtype

FORMAT = "npformer-checkpoint-1"
MAX_HEADER_BYTES = 1 << 20     # the JSON header is a few kB
MAX_SMALL_BYTES = 64 << 20     # a member that is not a parameter or its Adam moments: generator states, counters


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
    if os.path.isdir(path):
        raise StorageError(f"cannot write the checkpoint {path}: it is a folder.")
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StorageError(f"cannot write the checkpoint {path}: a part of its folder is a file.") from None
    _remove_stale_temporaries(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                                    # atomic on POSIX and Windows
    except OSError as e:                                         # a full disk, no permission, ...
        kept = "the checkpoint already there is left as it was" if os.path.exists(path) else "nothing was written"
        raise StorageError(f"could not write the checkpoint {path} ({os_reason(e)}); {kept}.") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _remove_stale_temporaries(path):
    """Delete `path`.tmp-PID files of saves whose process is gone (killed mid-save)."""
    for tmp in glob.glob(glob.escape(path) + ".tmp-*"):
        pid = tmp.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.remove(tmp)
            except OSError:                                      # another save removed it first
                pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):           # someone else's process, or not a pid
        return True
    return True


# What zipfile and NumPy raise for a damaged or foreign file: a bad archive, a cut-off member, a
# compression or zip version it does not know, an encrypted member, a bad .npy header.
UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error)


def _unreadable(path):
    return CheckpointError(f"{path} is not a readable npformer checkpoint (truncated or another kind of file).")


def inspect(path):
    """path -> (header dict, {member: (shape, dtype)}): the header parsed and checked, and every
    array's declared shape and dtype, with no array data read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}.")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file.")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    shape, dtype = _npy_header(f)
                name = info.filename[:-len(".npy")]
                if dtype.hasobject or (math.prod(shape) * dtype.itemsize > info.file_size):
                    raise _unreadable(path)                      # pickled objects, or more data declared than stored
                members[name] = (shape, dtype)
            header = None
            if "header" in members and zf.getinfo("header.npy").file_size <= MAX_HEADER_BYTES:
                with zf.open("header.npy") as f:
                    header = _json(np.lib.format.read_array(f, allow_pickle=False))
    except PermissionError:
        raise
    except (*UNREADABLE, zipfile.LargeZipFile):
        raise _unreadable(path) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = f"format {header.get('format')!r}" if isinstance(header, dict) else "no npformer header"
        raise CheckpointError(f"{path} is not an npformer checkpoint ({found}).")
    header.setdefault("meta", {})                                # a library save with meta=None
    for key, kind in (("config", dict), ("meta", dict), ("model", str), ("dtype", str)):
        if key in header and not isinstance(header[key], kind):
            raise CheckpointError(f"{path} has a damaged header: its {key!r} is not a {kind.__name__}.")
    if "config" not in header:
        raise CheckpointError(f"{path} has a damaged header: it has no 'config'.")
    return header, members


def _npy_header(f):
    """(shape, dtype) from the start of an .npy member, before its data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"npy version {version}")
    return tuple(shape), np.dtype(dtype)


def _json(array):
    try:
        return json.loads(str(array))
    except ValueError:
        return None


def read(path, model=None):
    """path -> (header dict, {name: param array}, {name: extra array}), all on the host.

    Every parameter must have the shape that `model` (default: the model the header's config
    builds) gives it, Adam's moments the shape of their parameter, and each other member fit in
    MAX_SMALL_BYTES, all checked before any data is read; weights must be finite floats."""
    path = os.fspath(path)
    header, members = inspect(path)
    expected = {k: tuple(v.shape) for k, v in (model or build(header, path, backend="numpy")).parameters().items()}
    small = 0                                                    # bytes of the members that are not weights
    for name, (shape, dtype) in members.items():
        kind, _, key = name.partition("/")
        want = expected.get(key) if kind == "param" else expected.get(key.split("/", 2)[-1]) \
            if key.startswith(("adam/m/", "adam/v/")) else None
        if kind == "param" and want is None:
            raise CheckpointError(f"{path} holds a parameter {key!r} that its model does not have.")
        if want is not None and shape != want:
            raise CheckpointError(f"{path}: {name} declares shape {shape}, its model's {want}.")
        if want is not None and dtype.name not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: {name} has dtype {dtype}, not a floating-point type.")
        small += math.prod(shape) * dtype.itemsize if want is None and name != "header" else 0
        if small > MAX_SMALL_BYTES:
            raise CheckpointError(f"{path}: {name} takes the arrays besides the weights past "
                                  f"{MAX_SMALL_BYTES:,} bytes, more than a checkpoint holds.")
    params, extra = {}, {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in members:
                kind, _, key = name.partition("/")
                if kind in ("param", "extra"):
                    with zf.open(name + ".npy") as f:
                        (params if kind == "param" else extra)[key] = np.lib.format.read_array(f, allow_pickle=False)
    except PermissionError:
        raise
    except UNREADABLE:
        raise _unreadable(path) from None
    for name, a in [*(("param/" + k, v) for k, v in params.items()),
                    *(("extra/" + k, v) for k, v in extra.items() if k.startswith("adam/"))]:
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values, so the model it saved cannot be used.")
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
    path = os.fspath(path)
    model = build(inspect(path)[0], path, backend, dtype)
    _, params, _ = read(path, model)
    load_into(model, params, path)
    return model


def build(header, path, backend=None, dtype=None):
    """A fresh model of the class, config and dtype a checked header names (its weights not read)."""
    model_class = _model_class(header.get("model", "transformer"), path)
    try:
        return model_class(header["config"], dtype=check_float_dtype(dtype or header.get("dtype", "float32")),
                           backend=backend)
    except (TypeError, ConfigError) as e:                        # an edited or damaged header
        reason = str(e).rstrip(".")
        raise CheckpointError(f"{path} holds a configuration this npformer cannot build ({reason}).") from None


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
