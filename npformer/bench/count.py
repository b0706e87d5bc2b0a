"""Array operations per training step, counted on the strict backend.

On a GPU every array operation is at least one kernel launched from Python, and at the
workloads' sizes the launches, not the arithmetic, set npformer's step time. The count is a
figure anyone can reproduce on a CPU: one training step (zero_grad, forward, loss, backward,
clipping, Adam) of one model on one batch, as `npformer train` takes it on a GPU (one
replica), run on the strict backend, which counts every operation that passes through it
(npformer/backend_strict.py says what counts as one).

    python -m npformer.bench.count [WORKLOAD ...] [--sites N]
"""

import argparse

from npformer.backend import OperationCount
from npformer.bench.steps import NpformerStep
from npformer.bench.workloads import BY_NAME, WORKLOADS, batches

# The reference workload's count may not grow past this (tests/test_bench.py holds it).
REFERENCE_CEILING = 1000
CLIP = 1.0                     # `npformer train`'s default: clipping is part of the counted step


def operations_per_step(workload, sites=False):
    """The array operations of one training step of `workload` (the second step: the first one
    also makes what is kept between steps). Returns the OperationCount (.n, and .sites)."""
    step = NpformerStep(workload.config(), backend="strict", replicas=1)
    step.adam.block_size = None                                  # as on a GPU: the whole arena is one block
    first, second = (step.to_device(b) for b in batches(workload, 2, seed=1))
    step.step(first, clip=CLIP)
    with OperationCount(sites=sites) as ops:
        step.step(second, clip=CLIP)
    return ops


def main(argv=None):
    ap = argparse.ArgumentParser(description="Array operations per training step, per workload "
                                             "(strict backend, one replica).")
    ap.add_argument("workloads", nargs="*", choices=[[]] + list(BY_NAME), metavar="WORKLOAD",
                    help=f"any of {', '.join(BY_NAME)} (default: all)")
    ap.add_argument("--sites", type=int, default=0, metavar="N",
                    help="also list the N lines of code that make the most operations")
    args = ap.parse_args(argv)
    for w in [BY_NAME[n] for n in args.workloads] or WORKLOADS:
        ops = operations_per_step(w, sites=args.sites > 0)
        print(f"{w.name:18} {ops.n:6d} array operations per step")
        for site, n in ops.sites.most_common(args.sites) if args.sites else ():
            print(f"    {n:5d}  {site}")


if __name__ == "__main__":
    main()
