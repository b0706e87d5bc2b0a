"""The benchmark's results as terminal lines, and as a Markdown page when `npformer bench`
is given --markdown PATH (the published page is docs/benchmarks.md)."""

import datetime

from npformer.bench.harness import TARGET_MATMUL_FRACTION, TARGET_RATIO
from npformer.train.optim import AFTER_WARMUP

HEADER = (f"{'workload':18} {'npformer ms':>11} {'ops/step':>8} {'PyTorch ms':>10} {'ratio':>6} {'target':>7}  "
          f"{'GFLOP/s':>7} {'matmul':>7} {'of matmul':>9}  {'peak MB np / torch':>18}")


def matmul_rate(r, fallback):
    """The rate a workload's FLOP/s is set against: the product timed interleaved with its
    steps, else the run's own measurement (`fallback`, FLOP/s)."""
    return r.matmul_rate or fallback


def _mb(b):
    return "n/a" if b is None else f"{b / 2**20:.0f}"


def _ops(r):
    return "n/a" if r.operations is None else str(r.operations)


def _target(name):
    return f"<={TARGET_RATIO[name]:.2f}" if name in TARGET_RATIO else ""


GPU_NOTE = ("The targets are set for the CPU and are not applied here. These workloads are small "
            "for a GPU: npformer's step is a few thousand array operations, each one CuPy kernel "
            "launched from Python, so its time barely grows from the reference to the large workload "
            "and the GPU mostly waits for the next launch; PyTorch launches fewer, fused kernels from C++.")


def has_targets(backend):
    """The targets are set for the CPU; a GPU run is measured, not judged."""
    return backend != "cupy"


def _met(value, bound, at_most=True):
    return "" if value is None or bound is None else (" ok" if (value <= bound if at_most else value >= bound) else " MISSED")


def line(r, matmul, targets=True):
    """One workload's row for the terminal."""
    w = r.workload
    torch_ms = f"{r.median('torch') * 1e3:10.1f}" if r.ratio is not None else f"{'-':>10}"
    ratio = f"{r.ratio:6.2f}" if r.ratio is not None else f"{'-':>6}"
    matmul = matmul_rate(r, matmul)
    frac = r.flop_rate() / matmul
    mem = f"{_mb(r.peak_bytes.get('npformer'))} / {_mb(r.peak_bytes.get('torch'))}"
    flag, target = "", ""
    if targets:
        target = _target(w.name)
        flag = _met(r.ratio, TARGET_RATIO.get(w.name))
        if w.name in TARGET_MATMUL_FRACTION:
            flag += _met(frac, TARGET_MATMUL_FRACTION[w.name], at_most=False)
    return (f"{w.name:18} {r.median('npformer') * 1e3:11.1f} {_ops(r):>8} {torch_ms} {ratio} {target:>7}  "
            f"{r.flop_rate() / 1e9:7.1f} {matmul / 1e9:7.0f} {frac:8.0%}  {mem:>18}{flag}")


def solve_lines(solves, cfg):
    out = [f"time to solve (default `npformer train`: reverse task, exact match >= {cfg.target:.0%} "
           f"on {cfg.eval_size} held-out sequences, scored every {cfg.eval_every} steps):"]
    for s in solves:
        state = f"reached {s.exact_match:.3f} at step {s.step}" if s.reached else \
            f"not reached in {s.step} steps (exact match {s.exact_match:.3f})"
        out.append(f"  {s.framework:8} {state}; {s.train_s:.1f} s in steps, {s.eval_s:.1f} s evaluating")
    return out


PERFORMANCE_LINK = "[performance](performance.md)"


def markdown(results, solves, solve_cfg, env, command):
    """The whole docs/benchmarks.md page (docs/benchmarks-gpu.md on CuPy)."""
    # orphan: the page builds without a "not in any toctree" warning until the index links it
    title = "Benchmarks on a GPU" if env["backend"] == "cupy" else "Benchmarks"
    out = ["---", "orphan: true", "---", "", f"# {title}", "",
           "Written by `npformer bench` (npformer/bench/); do not edit by hand. Each workload is a "
           "whole training step (forward, cross-entropy, backward, Adam update) in float32 on "
           "reverse-task batches, for npformer and for a PyTorch reference built from "
           "`nn.TransformerEncoderLayer`/`nn.TransformerDecoderLayer` of the same sizes, on the same "
           "batches and with the same thread count. The two are stepped in turn (interleaved), so "
           "load from elsewhere slows both alike; times are medians over many steps after warm-up, "
           "and the ratio npformer / PyTorch is the figure to read. GFLOP/s counts the matrix "
           "products of the step (3x the forward's) and is set against the float32 matrix-multiply "
           "rate of one large square product (2048 x 2048 on the CPU, 8192 on a GPU, with the "
           "same threads), timed in the same interleaved rounds as the workload's steps, so that "
           "both figures are taken under the same load. Peak MB is the most memory a "
           "training step holds at once: parameters, gradients, optimiser state, activations and "
           "temporaries (resident memory above the process before the model was built, measured in "
           "a fresh process; device memory on a GPU).", "",
           f"What each of the code's speed changes buys, and why the math is unchanged: {PERFORMANCE_LINK}.", "",
           f"- command: `{command}`",
           f"- machine: {env['machine']}",
           f"- backend: {env['backend']}; threads: {env['threads']} (NumPy's BLAS and `torch.set_num_threads`)",
           f"- versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items())}",
           f"- float32 matrix-multiply rate measured alone at the start / end of the run: "
           f"{env['matmul'] / 1e9:.0f} / {env.get('matmul_end', env['matmul']) / 1e9:.0f} GFLOP/s "
           "(the table's rates were measured alongside each workload)",
           f"- load average (1 min) when the run started / ended: {env['load'][0]:.1f} / {env['load'][-1]:.1f} "
           "(other processes on the machine; the interleaved ratios are the figures that survive it)",
           f"- date: {datetime.date.today().isoformat()}",
           *([f"- note: {env['note']}"] if env.get("note") else []), "",
           "PyTorch's layers also apply dropout to the attention weights and between the two "
           "feed-forward linears, where npformer (like the paper's text) applies it only to each "
           "sublayer's output and the embedding sums; the workloads with dropout therefore ask "
           "PyTorch for two more masks per sublayer. Both models start from npformer's initial "
           "distributions.", "",
           *([GPU_NOTE, ""] if not has_targets(env["backend"]) else []),
           "Array ops/step counts the array operations of one npformer training step (clipping "
           "included) with one replica, as on a GPU, where each is at least one kernel launched "
           "from Python: counted on the strict backend (`python -m npformer.bench.count`), so the "
           "figure does not depend on the machine.", "",
           "| workload | sizes | npformer ms/step | array ops/step | PyTorch ms/step | npformer / PyTorch | target | "
           "npformer GFLOP/s | matmul GFLOP/s | of matmul rate | peak MB npformer | peak MB PyTorch |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        w = r.workload
        torch_ms = f"{r.median('torch') * 1e3:.1f}" if r.ratio is not None else "-"
        ratio = f"**{r.ratio:.2f}**" if r.ratio is not None else "-"
        target = TARGET_RATIO.get(w.name) if has_targets(env["backend"]) else None
        target = f"<= {target:.2f}" if target else ""
        if target and w.name in TARGET_MATMUL_FRACTION:
            target += f"; >= {TARGET_MATMUL_FRACTION[w.name]:.0%} of matmul"
        matmul = matmul_rate(r, env["matmul"])
        out.append(f"| {w.name} | {w.describe()} | {r.median('npformer') * 1e3:.1f} | {_ops(r)} | {torch_ms} | {ratio} | "
                   f"{target} | {r.flop_rate() / 1e9:.0f} | {matmul / 1e9:.0f} | {r.flop_rate() / matmul:.0%} | "
                   f"{_mb(r.peak_bytes.get('npformer'))} | {_mb(r.peak_bytes.get('torch'))} |")
    if solves:
        out += ["", "## Time to solve", "",
                f"The default `npformer train` recipe (reverse task, lengths {solve_cfg.min_len}..{solve_cfg.max_len}, "
                f"d_model {solve_cfg.d_model}, batch {solve_cfg.batch_size}, dropout {solve_cfg.dropout}, "
                f"lr warming up to {solve_cfg.lr} over {solve_cfg.warmup} steps, "
                f"{AFTER_WARMUP[solve_cfg.schedule]}, "
                f"clip {solve_cfg.clip}) until "
                f"greedy-decoded exact match on {solve_cfg.eval_size} held-out sequences reaches "
                f"{solve_cfg.target:.0%}, scored every {solve_cfg.eval_every} steps; the PyTorch reference "
                "trained on the same batches with the same recipe. Seconds count training steps; "
                "evaluation is listed apart.", "",
                "| framework | reached | steps | seconds in steps | seconds evaluating |",
                "|---|---|--:|--:|--:|"]
        for s in solves:
            name = "npformer" if s.framework == "npformer" else "PyTorch"
            out.append(f"| {name} | {'yes' if s.reached else 'no'} ({s.exact_match:.3f}) | {s.step} | "
                       f"{s.train_s:.1f} | {s.eval_s:.1f} |")
    return "\n".join(out) + "\n"
