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


class MatmulStep:
    """One (n,n) @ (n,n) float32 product, 2 n^3 operations, with the interface of a training
    step (harness.py), so the ceiling can be timed interleaved with a workload's steps, under
    the same load from the rest of the machine."""

    def __init__(self, xp=np, n=2048):
        rng = default_rng(xp, 0)
        self.xp, self.flops = xp, 2.0 * n ** 3
        self.a = rng.random((n, n), dtype=xp.float32)            # (n,n)
        self.b = rng.random((n, n), dtype=xp.float32)            # (n,n)
        self.out = xp.empty((n, n), dtype=xp.float32)            # (n,n)

    def to_device(self, batch):
        return None                                              # the operands are made once

    def step(self, batch=None):
        self.xp.matmul(self.a, self.b, out=self.out)

    def synchronize(self):
        synchronize(self.xp)


def matmul_rate(xp=np, n=2048, repeats=7):
    """The measured float32 matrix-multiply rate in FLOP/s: the median over `repeats` timings
    of one (n,n) @ (n,n) product, after one untimed warm-up."""
    product = MatmulStep(xp, n)
    product.step()
    times = []
    for _ in range(repeats):
        product.synchronize()
        t0 = time.perf_counter()
        product.step()
        product.synchronize()
        times.append(time.perf_counter() - t0)
    return product.flops / sorted(times)[len(times) // 2]
