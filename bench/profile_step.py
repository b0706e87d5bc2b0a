"""Profile one workload's npformer training step: where the time goes, function by function.

    python bench/profile_step.py reference-nodrop --steps 20 [--threads 1] [--backend numpy] [--replicas 1]

cProfile with the thread's CPU clock (time.thread_time) rather than the wall clock, so time
other processes take from a shared machine does not land on whatever function was running.
With --threads 1 that is the CPU time of the whole step (BLAS runs in this thread); with more
threads BLAS work done by the other threads is not counted. The step runs on one model
(--replicas 1) unless asked: with replicas, only the part run in this thread is profiled.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from npformer.backend import blas_threads  # noqa: E402
from npformer.bench.steps import NpformerStep  # noqa: E402
from npformer.bench.workloads import BY_NAME, batches  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=list(BY_NAME))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--top", type=int, default=25, help="functions to list")
    args = ap.parse_args()
    blas_threads(args.threads)
    w = BY_NAME[args.workload]
    step = NpformerStep(w.config(), args.backend, replicas=args.replicas)
    data = [step.to_device(b) for b in batches(w, 4, seed=1)]
    for b in data[:2]:
        step.step(b)                                             # warm-up
    t0 = time.thread_time()
    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    for i in range(args.steps):
        step.step(data[i % len(data)])
    prof.disable()
    print(f"{w.name}: {(time.thread_time() - t0) / args.steps * 1e3:.1f} ms of thread CPU time per step "
          "(profiling included)")
    pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
