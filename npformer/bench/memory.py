"""Peak memory of one training step, measured the same way for npformer and for PyTorch.

The figure is everything training needs at its peak: parameters, gradients, optimiser state
and the step's activations and temporaries (npformer's layers keep the last step's caches
between steps, PyTorch allocates Adam's state at the first step: counting from before the
model exists charges each framework for all of its own choices).

On the CPU: the peak resident set size during a step minus the resident size before the
model was built, in a fresh process (`python -m npformer.bench.memory`) so the timing runs
are not disturbed.
Two settings make RSS follow the live arrays: glibc is told to serve every allocation of
64 KiB or more with its own mmap (mallopt M_MMAP_THRESHOLD), so a freed array goes back to
the system at once instead of staying in the heap; and the kernel's high-water mark is reset
before the step (writing 5 to /proc/self/clear_refs). That needs Linux with glibc; elsewhere
the figure is left out. On a GPU: the allocator's own peak (PyTorch) or the memory pool's
size grown from only the live arrays (CuPy), each minus what was in use before the model.
"""

import ctypes
import json
import subprocess
import sys

M_MMAP_THRESHOLD = -3          # glibc's mallopt parameter number


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} is not in /proc/self/status")


def cpu_step_peak(make, batch, steps=2):
    """Peak resident bytes of a training step above the process before make() built the model,
    the most over `steps` steps after two warm-up steps."""
    libc = ctypes.CDLL("libc.so.6")
    if not libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024):
        raise OSError("mallopt refused M_MMAP_THRESHOLD")
    before = _status_kib("VmRSS")
    runner = make()
    batch = runner.to_device(batch)
    for _ in range(2):
        runner.step(batch)                                       # warm-up: optimiser state, caches
    peak = 0
    for _ in range(steps):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                         # reset the high-water mark to now
        runner.step(batch)
        peak = max(peak, _status_kib("VmHWM") - before)
    return peak * 1024


def gpu_step_peak(make, batch):
    """Peak device bytes of a training step above what was allocated before make()."""
    runner = make()
    if hasattr(runner, "torch"):
        cuda = runner.torch.cuda
        cuda.synchronize()
        before = cuda.memory_allocated()
        del runner
        runner = make()
        batch = runner.to_device(batch)
        for _ in range(2):
            runner.step(batch)
        cuda.reset_peak_memory_stats()
        runner.step(batch)
        runner.synchronize()
        return cuda.max_memory_allocated() - before
    pool = runner.xp.get_default_memory_pool()
    del runner
    pool.free_all_blocks()
    before = pool.used_bytes()
    runner = make()
    batch = runner.to_device(batch)
    for _ in range(2):
        runner.step(batch)
    runner.synchronize()
    pool.free_all_blocks()                                       # the pool now holds only live arrays
    runner.step(batch)
    runner.synchronize()
    return pool.total_bytes() - before                           # grown to the step's peak, then kept


def measure(framework, workload, backend="numpy", threads=None):
    """Peak bytes of one step, or None where it cannot be measured here."""
    if backend == "cupy":
        from npformer.bench.harness import make_runner
        from npformer.bench.workloads import batches
        return gpu_step_peak(lambda: make_runner(framework, workload, backend, threads), batches(workload, 1)[0])
    cmd = [sys.executable, "-m", "npformer.bench.memory", framework, json.dumps(workload.__dict__),
           str(threads or 0)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]


def main(argv):
    framework, spec, threads = argv[0], json.loads(argv[1]), int(argv[2]) or None
    from npformer.bench.harness import make_runner
    from npformer.bench.workloads import Workload, batches
    workload = Workload(**spec)
    # One step of a tiny model of the same kind first, so that library code and buffers a
    # framework touches once per process are resident before the baseline is read.
    tiny = Workload("tiny", 8, 2, 16, 1, batch=2, min_len=3, max_len=3, dropout=workload.dropout)
    primer = make_runner(framework, tiny, "numpy", threads)
    primer.step(primer.to_device(batches(tiny, 1)[0]))
    del primer
    try:
        peak = cpu_step_peak(lambda: make_runner(framework, workload, "numpy", threads), batches(workload, 1)[0])
    except OSError:
        peak = None
    print(json.dumps({"peak_bytes": peak}))


if __name__ == "__main__":
    main(sys.argv[1:])
