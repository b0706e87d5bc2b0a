"""What the benchmark runs on: the CPU, versions, the BLAS thread count, the matmul ceiling."""

import ctypes
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


def _openblas():
    """The OpenBLAS library NumPy loaded (found in this process's memory map), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    return get, put
    return None


def blas_threads(n=None):
    """The number of threads NumPy's BLAS uses; with n, set it first (OpenBLAS only, the way
    threadpoolctl does it). Elsewhere: the OMP/OPENBLAS/MKL environment variables, or the cores."""
    lib = _openblas()
    if lib is not None:
        get, put = lib
        if n is not None:
            put(int(n))
        return int(get())
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


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
