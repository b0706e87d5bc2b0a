"""`npformer bench`: npformer's training step against PyTorch's, interleaved, on five workloads;
the FLOP/s reached against the machine's measured matrix-multiply rate; peak memory per step;
and the time the default `npformer train` takes to solve the reverse task, beside PyTorch's.

    workloads.py        the five workloads, their batches, the FLOPs of a step
    steps.py            npformer's step (model, cross-entropy, backward, Adam)
    torch_reference.py  the same model from PyTorch's layers (torch imported lazily)
    harness.py          interleaved timing
    memory.py           peak memory of one step
    solve.py            time to solve
    machine.py          CPU, versions, the matrix-multiply ceiling
    report.py           terminal lines and docs/benchmarks.md
"""

import os

from npformer.backend import blas_threads, get_backend, name_of
from npformer.bench.workloads import BY_NAME, WORKLOADS, Workload

# Tiny sizes for `npformer bench --smoke`: the whole benchmark runs in seconds and measures nothing.
SMOKE = [Workload("tiny", 16, 2, 32, 1, batch=4, min_len=1, max_len=5, dropout=0.1),
         Workload("tiny-fixed-length", 16, 2, 32, 1, batch=2, min_len=6, max_len=6, dropout=0.0)]


def run(workloads=None, backend=None, threads=None, with_torch=True, solve=True, memory=True,
        count=True, seconds=10.0, min_steps=5, max_steps=200, warmup=2, markdown=None, command="npformer bench",
        smoke=False, note=None, write=print):
    """Run the benchmark, print its table, and write `markdown` (a path) if given.
    Returns (timings, solves)."""
    from npformer.bench import machine, report
    from npformer.bench.harness import bench_workload
    from npformer.bench.torch_reference import require_torch

    xp = get_backend(backend)
    backend = name_of(xp)
    torch = require_torch() if with_torch else None
    if with_torch and torch is None:
        write("PyTorch is not installed (pip install torch==2.13.0): timing npformer alone.")
        with_torch = False
    elif with_torch and backend == "cupy" and not torch.cuda.is_available():
        write(f"PyTorch {torch.__version__} here has no CUDA: timing npformer alone.")
        torch, with_torch = None, False
    threads = blas_threads(threads)                              # NumPy's BLAS threads, set if asked
    if torch is not None:
        torch.set_num_threads(threads)                           # PyTorch gets the same number
    if smoke:
        workloads, seconds, min_steps, max_steps, warmup = SMOKE, 0.0, 1, 1, 1
    elif workloads is None:
        workloads = WORKLOADS
    workloads = [BY_NAME[w] if isinstance(w, str) else w for w in workloads]

    n = 256 if smoke else 8192 if backend == "cupy" else 2048   # the product the ceiling is measured on
    env = {"machine": machine.describe(xp), "backend": backend, "threads": threads, "note": note,
           "load": [os.getloadavg()[0]],
           "versions": machine.versions(torch, xp), "matmul": machine.matmul_rate(xp, n)}
    write(f"npformer bench: backend {backend}, {threads} threads, {env['machine']}")
    write("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    write(f"float32 matrix multiply: {env['matmul'] / 1e9:.0f} GFLOP/s measured; each workload's "
          "share (column 'of matmul') is against the product timed alongside its steps (column 'matmul')\n")
    write(report.HEADER)
    timings = []
    for w in workloads:
        r = bench_workload(w, backend, threads, with_torch, warmup=warmup, min_steps=min_steps,
                           seconds=seconds, max_steps=max_steps, memory=memory, matmul_n=n,
                           count=count)
        timings.append(r)
        write(report.line(r, env["matmul"], targets=report.has_targets(backend)))

    solves, solve_cfg = [], None
    if solve:
        from npformer.bench.solve import time_to_solve
        from npformer.train.loop import TrainConfig
        solve_cfg = TrainConfig(d_model=16, n_heads=2, d_ff=32, n_layers=1, steps=2, eval_every=1,
                                eval_size=4, max_len=4) if smoke else TrainConfig()
        write("")
        solves = time_to_solve(backend, with_torch, solve_cfg, write=write)
        for text in report.solve_lines(solves, solve_cfg):
            write(text)
    env["load"].append(os.getloadavg()[0])                       # other work on the machine, for the record
    env["matmul_end"] = machine.matmul_rate(xp, n)               # alone again, for the record
    write(f"float32 matrix multiply measured again: {env['matmul_end'] / 1e9:.0f} GFLOP/s")
    if markdown:
        os.makedirs(os.path.dirname(os.path.abspath(markdown)), exist_ok=True)
        with open(markdown, "w") as f:
            f.write(report.markdown(timings, solves, solve_cfg, env, command))
        write(f"\nwrote {markdown}")
    return timings, solves
