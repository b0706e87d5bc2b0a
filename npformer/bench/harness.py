"""Timing: npformer and the PyTorch reference stepped in turn, on the same batches.

The two frameworks share the machine, so anything else running on it slows both alike:
they are timed interleaved, in short blocks of steps taken in turn (which goes first
alternates), and the figure compared is the ratio of their median step times.

Why blocks and a pause, not strictly one step each: a BLAS or OpenMP thread pool keeps its
threads spinning for a while after its last call (OpenBLAS's for about 0.1 s), so a step
that starts right after the other framework's would share the cores with those spinning
threads. Each block therefore starts after a short pause and with one untimed step, and
the timed steps are steps that follow a step of their own framework, as in training.

Every step is bracketed by a device synchronisation, so on a GPU the clock reads finished
work, not queued launches.
"""

import time
from dataclasses import dataclass, field

from npformer.bench.count import operations_per_step
from npformer.bench.steps import NpformerStep
from npformer.bench.torch_reference import build as build_torch
from npformer.bench.torch_reference import require_torch
from npformer.bench.workloads import batches, step_flops

# npformer / PyTorch median step time, at most; and the large workload's share of the
# measured matrix-multiply rate, at least. A benchmark's targets, printed, never asserted.
TARGET_RATIO = {"reference": 0.7, "reference-nodrop": 1.0, "medium": 1.1, "large": 1.1, "deep": 1.1}
TARGET_MATMUL_FRACTION = {"large": 0.70}


def make_runner(framework, workload, backend="numpy", threads=None, seed=0):
    """A model with its optimiser and a step(batch) method, for "npformer" or "torch"."""
    cfg = workload.config()
    if framework == "npformer":
        return NpformerStep(cfg, backend, seed)
    torch = require_torch()
    if threads:
        torch.set_num_threads(threads)
    return build_torch(cfg, device="cuda" if backend == "cupy" else "cpu", seed=seed)


@dataclass
class Timing:
    workload: object
    times: dict                    # framework -> list of step seconds ("matmul": the ceiling's product)
    flops: float                   # mean matrix-product FLOPs of one step over the batches used
    peak_bytes: dict = field(default_factory=dict)   # framework -> bytes, or None
    matmul_flops: float = 0.0      # FLOPs of the ceiling's product, when it was timed alongside
    operations: int = None         # array operations in one npformer step (bench/count.py), or None

    def median(self, name):
        t = sorted(self.times[name])
        return t[len(t) // 2]

    @property
    def ratio(self):
        return self.median("npformer") / self.median("torch") if "torch" in self.times else None

    def flop_rate(self, name="npformer"):
        return self.flops / self.median(name)

    @property
    def matmul_rate(self):
        """The float32 matrix-multiply rate measured interleaved with this workload's steps
        (FLOP/s), or None if the product was not timed alongside."""
        return self.matmul_flops / self.median("matmul") if "matmul" in self.times else None


PAUSE_S = 0.2                  # before each block: the other framework's threads go idle
BLOCK_S = 0.5                  # aim for blocks of about this many seconds of timed steps


def _timed_step(runner, batch):
    runner.synchronize()
    t0 = time.perf_counter()
    runner.step(batch)
    runner.synchronize()
    return time.perf_counter() - t0


def time_interleaved(runners, host_batches, warmup=2, min_steps=5, seconds=10.0, max_steps=200):
    """Step the runners in turn, in blocks, on the same batches, until each has min_steps
    timed steps and `seconds` have passed (or max_steps). Returns name -> list of step seconds."""
    names = list(runners)
    dev = {n: [runners[n].to_device(b) for b in host_batches] for n in names}
    block = {}
    for n in names:
        for i in range(warmup):
            t = _timed_step(runners[n], dev[n][i % len(host_batches)])
        block[n] = max(1, min(10, round(BLOCK_S / t)))           # timed steps per block, from the last warm-up
    times = {n: [] for n in names}
    start, i, rounds = time.perf_counter(), 0, 0
    while True:
        for n in (names if rounds % 2 == 0 else names[::-1]):    # alternate who goes first
            time.sleep(PAUSE_S)
            runners[n].step(dev[n][i % len(host_batches)])       # untimed: wakes this framework's threads
            for j in range(block[n]):
                times[n].append(_timed_step(runners[n], dev[n][(i + j) % len(host_batches)]))
        i, rounds = i + 1, rounds + 1
        done = min(len(t) for t in times.values())
        if done >= max_steps or (done >= min_steps and time.perf_counter() - start >= seconds):
            return times


def bench_workload(workload, backend="numpy", threads=None, with_torch=True, n_batches=8,
                   warmup=2, min_steps=5, seconds=10.0, max_steps=200, memory=True, matmul_n=None,
                   count=True):
    """Time one workload for npformer (and PyTorch). Returns a Timing.

    count: also count the array operations of one npformer step (on the strict backend, so the
    figure is the same on every machine; bench/count.py).

    matmul_n: also time the ceiling's (n,n) product in the same interleaved rounds, so the
    share of the matrix-multiply rate compares two figures measured under the same load."""
    from npformer.bench import memory as mem
    from npformer.bench.machine import MatmulStep
    host = batches(workload, n_batches, seed=1)
    runners = {"npformer": make_runner("npformer", workload, backend, threads)}
    if with_torch:
        runners["torch"] = make_runner("torch", workload, backend, threads)
    if matmul_n:
        runners["matmul"] = MatmulStep(runners["npformer"].xp, matmul_n)
    times = time_interleaved(runners, host, warmup, min_steps, seconds, max_steps)
    flops = sum(step_flops(workload, b[0].shape[1], b[1].shape[1]) for b in host) / len(host)
    result = Timing(workload, times, flops, matmul_flops=runners["matmul"].flops if matmul_n else 0.0)
    del runners                                                   # free the models before measuring memory
    if count:
        result.operations = operations_per_step(workload).n
    if memory:
        for name in ("npformer", "torch"):
            if name in result.times:
                result.peak_bytes[name] = mem.measure(name, workload, backend, threads)
    return result
