"""What the benchmark runs on: the CPU, versions, the matmul ceiling."""

import os
import platform
import time

import numpy as np

from npformer.backend import default_rng, name_of, synchronize


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(xp=np):
    """The machine in words: the CPU and its cores, and the GPU when xp is CuPy."""
    text = f"{cpu_name()}, {os.cpu_count()} cores"
    if name_of(xp) == "cupy":
        props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        text += f"; GPU {gpu}, {props['totalGlobalMem'] / 2**30:.0f} GiB"
    return text


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
    except Exception:  # the layout of show_config differs between NumPy versions
        return "unknown BLAS"


def versions(torch=None, xp=np):
    out = {"python": platform.python_version(), "numpy": np.__version__, "blas": blas_name()}
    if torch is not None:
        out["torch"] = torch.__version__
    if name_of(xp) == "cupy":
        out["cupy"] = xp.__version__
    return out


def matmul_rate(xp=np, n=2048, repeats=7):
    """The measured float32 matrix-multiply rate in FLOP/s: the median over `repeats` timings
    of one (n,n) @ (n,n) product, 2 n^3 operations, after one untimed warm-up."""
    rng = default_rng(xp, 0)
    a = rng.random((n, n), dtype=xp.float32)                   # (n,n)
    b = rng.random((n, n), dtype=xp.float32)                   # (n,n)
    out = xp.empty((n, n), dtype=xp.float32)                     # (n,n)
    xp.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        synchronize(xp)
        t0 = time.perf_counter()
        xp.matmul(a, b, out=out)
        synchronize(xp)
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / sorted(times)[len(times) // 2]
