"""The paper's Table 1, measured: self-attention against a recurrent layer.

    python -m npformer.experiments.complexity

Table 1 of "Attention Is All You Need" compares layer types by three numbers: the operations
per layer (O(n^2 d) for self-attention, O(n d^2) for a recurrent layer, n the sequence length
and d the width), the operations that must run one after another (O(1) against O(n)), and
the longest path a signal travels between two positions (O(1) against O(n)). This command
measures them for npformer's multi-head self-attention and its GRU, forward plus backward:

  - floating-point operations, counted: every matrix product the layer performs is seen by a
    counting array type and adds 2 m k n (a multiply and an add per term);
  - wall time, the fastest of several repeats, with every BLAS thread of the machine;
  - sequential steps: the dependent layer steps of one forward pass (the GRU's steps are
    counted as it takes them);
  - path length: how many of those steps lie between input position 0 and output n - 1.

against n at a fixed d, and against d at a fixed n. The n = d crossover the table predicts
shows in the counts: per sequence, self-attention does 8 n d^2 + 4 n^2 d products' worth of
work forward, the GRU 12 n d^2, and the two are equal exactly at n = d.
Writes docs/experiments/complexity.md, complexity.json and complexity.png.
"""

import argparse
import os
import sys
import time

import numpy as np

from npformer.backend import blas_threads
from npformer.experiments import DOCS, command, how_many, machine, markdown_table, pyplot, write_outputs
from npformer.layers.attention import MultiHeadAttention
from npformer.layers.gru import GRU


class Counted(np.ndarray):
    """A NumPy array that adds the floating-point operations of every matrix product it takes
    part in to Counted.flops. Results of arithmetic on it are Counted too, so the count follows
    the data through a whole forward and backward pass."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        plain = [np.asarray(a) if isinstance(a, Counted) else a for a in inputs]
        if out is not None:
            kwargs["out"] = tuple(np.asarray(o) if isinstance(o, Counted) else o for o in out)
        if ufunc is np.matmul and method == "__call__":
            a, b = (np.asarray(v) for v in plain)
            m, k = a.shape[-2:] if a.ndim > 1 else (1, a.shape[-1])
            n = b.shape[-1] if b.ndim > 1 else 1
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if a.ndim > 2 or b.ndim > 2 else ()
            Counted.flops += 2 * m * k * n * int(np.prod(batch, dtype=np.int64))
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        if isinstance(result, np.ndarray):
            return result.view(Counted)
        return result


class _CountingNumpy:
    """NumPy, but the arrays its functions make are Counted: a layer given this as its array
    module counts the products on the arrays it makes itself (an initial state, an output
    buffer) as well as on those it is given."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, (type, np.ufunc)):
            return attr                                          # ufuncs already return Counted

        def made_counted(*args, **kwargs):
            result = attr(*args, **kwargs)
            return result.view(Counted) if type(result) is np.ndarray else result
        return made_counted


def make_layer(kind, d, seed=0, n_heads=4, counting=False):
    rng = np.random.default_rng(seed)
    if kind == "attention":
        layer = MultiHeadAttention(d, n_heads, rng, dtype="float32")
    else:
        layer = GRU(d, d, rng, dtype="float32")
    if counting:
        for _, sub in layer.named_layers():
            sub.xp = _CountingNumpy()
    return layer


def run_layer(layer, kind, x):
    """One forward and backward pass; returns the number of dependent steps of the forward."""
    if kind == "attention":
        out = layer.forward(x)                                   # (B,n,d)  self-attention, no mask
        layer.backward(np.ones_like(out))
        return 1                                                 # every position at once
    out = layer.forward(x)                                       # (B,n,d)  one GRU step per position
    layer.backward(np.ones_like(out))
    return len(layer.cache)                                      # the steps it took, one after another


def count_flops(kind, n, d, batch=1):
    """Counted floating-point operations of one forward + backward pass over `batch` sequences
    of length n and width d, and the number of sequential steps of the forward."""
    layer = make_layer(kind, d, counting=True)
    x = np.random.default_rng(1).standard_normal((batch, n, d)).astype(np.float32).view(Counted)
    Counted.flops = 0
    steps = run_layer(layer, kind, x)
    return Counted.flops, steps


def count_forward_flops(kind, n, d):
    """The forward pass alone, one sequence: the number Table 1 speaks of."""
    layer = make_layer(kind, d, counting=True)
    x = np.random.default_rng(1).standard_normal((1, n, d)).astype(np.float32).view(Counted)
    Counted.flops = 0
    layer.forward(x)
    return Counted.flops


def predicted_forward_flops(kind, n, d):
    """From the shapes: attention's projections 2 n d (3d) + 2 n d d, its scores and weighted
    sum 2 n^2 d each; the GRU's input side 2 n d (3d), its recurrent side 2 d (2d) + 2 d d a step."""
    if kind == "attention":
        return 8 * n * d * d + 4 * n * n * d
    return 12 * n * d * d


def path_length(kind, n):
    """Layer steps a gradient passes through from output position n - 1 back to input
    position 0 (None if it never arrives). Self-attention mixes all positions in its one step;
    in the GRU we count the steps of backpropagation through time that carry a nonzero
    gradient, starting from the gradient of output n - 1 alone."""
    layer = make_layer(kind, 8, n_heads=2)
    x = np.random.default_rng(2).standard_normal((1, n, 8))
    out = layer.forward(x)
    dout = np.zeros_like(out)
    dout[0, n - 1] = 1.0                                         # the gradient of output n - 1 only
    carried = []
    if kind == "gru":
        step_backward = layer.step_backward
        def counting(dh_new, cache):
            carried.append(bool(np.any(dh_new != 0)))
            return step_backward(dh_new, cache)
        layer.step_backward = counting
    dx = layer.backward(dout)
    dx = dx[0] if isinstance(dx, tuple) else dx                  # the GRU also returns dh0
    if not np.any(dx[0, 0] != 0):
        return None
    return 1 if kind == "attention" else sum(carried)


def step_time(kind, n, d, batch, repeats):
    """Seconds for one forward + backward pass, the fastest of `repeats` (after one warm-up)."""
    layer = make_layer(kind, d)
    x = np.random.default_rng(1).standard_normal((batch, n, d)).astype(np.float32)
    best = float("inf")
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        run_layer(layer, kind, x)
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


def sweep(points, fixed, vary, batch, repeats, log):
    """Counts and times for both layers at each point; vary is "n" or "d"."""
    rows = []
    for v in points:
        n, d = (v, fixed) if vary == "n" else (fixed, v)
        row = {"n": n, "d": d}
        for kind in ("attention", "gru"):
            flops, steps = count_flops(kind, n, d)
            row[kind] = {"flops": flops, "forward_flops": count_forward_flops(kind, n, d),
                         "predicted_forward_flops": predicted_forward_flops(kind, n, d),
                         "steps": steps, "seconds": step_time(kind, n, d, batch, repeats)}
        log(f"  n={n:5d} d={d:5d}  attention {row['attention']['flops'] / 1e6:9.1f} MFLOP "
            f"{1e3 * row['attention']['seconds']:8.2f} ms | GRU {row['gru']['flops'] / 1e6:9.1f} MFLOP "
            f"{1e3 * row['gru']['seconds']:8.2f} ms")
        rows.append(row)
    return rows


def crossover(rows, key):
    """Where the GRU's number and attention's are equal, interpolated between measured points
    (geometrically): a value if the ratio crosses 1 once, "several" if it crosses more than once
    (noise, at sizes where the two are close), None if it does not cross."""
    vary = "n" if rows[0]["d"] == rows[-1]["d"] else "d"
    ratios = [(r[vary], r["attention"][key] / r["gru"][key]) for r in rows]
    found = []
    for (v0, q0), (v1, q1) in zip(ratios, ratios[1:]):
        if (q0 - 1) * (q1 - 1) <= 0 and q0 != q1:
            lv = np.log(v0) + (np.log(v1) - np.log(v0)) * (1 - q0) / (q1 - q0)
            found.append(float(np.exp(lv)))
    if len(found) > 1:
        return "several"
    return found[0] if found else None


def figure(path, by_n, by_d, d_fixed, n_fixed, batch):
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    names = {"attention": "multi-head self-attention", "gru": "GRU"}
    for col, (rows, vary, fixed) in enumerate(((by_n, "n", f"d = {d_fixed}"), (by_d, "d", f"n = {n_fixed}"))):
        xs = [r[vary] for r in rows]
        for kind, marker in (("attention", "o"), ("gru", "s")):
            axes[0, col].plot(xs, [r[kind]["flops"] for r in rows], marker=marker, label=names[kind])
            axes[1, col].plot(xs, [1e3 * r[kind]["seconds"] for r in rows], marker=marker, label=names[kind])
        for row, what in ((0, "counted FLOPs per sequence, fwd + bwd"),
                          (1, f"ms per batch of {batch}, fwd + bwd")):
            ax = axes[row, col]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(f"{'sequence length n' if vary == 'n' else 'width d'} ({fixed})")
            ax.set_ylabel(what)
            ax.axvline(d_fixed if vary == "n" else n_fixed, color="gray", lw=0.8, ls="--")
            ax.legend(fontsize=8)
            ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_title("against length: attention grows as n^2, the GRU as n", fontsize=10)
    axes[0, 1].set_title("against width: the GRU grows as d^2, attention's n^2 d term as d", fontsize=10)
    fig.text(0.5, 0.005, "dashed line: n = d, where Table 1 predicts the two layers cost the same",
             ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=128, help="the width held fixed while n varies")
    ap.add_argument("--n", type=int, default=128, help="the length held fixed while d varies")
    ap.add_argument("--points", default="16,32,64,128,256,512,1024",
                    help="the values of n (and of d) to measure, comma-separated")
    ap.add_argument("--batch", type=int, default=8, help="sequences per timed pass")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per point; the fastest is kept")
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat: checks the command works")
    ap.add_argument("--out", default=None, help=f"folder for the page, its data and plot (default {DOCS})")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    points = [int(p) for p in args.points.split(",")]
    if args.quick:
        points, args.d, args.n, args.repeats, args.batch = [8, 16, 32], 16, 16, 1, 2
    threads = blas_threads()
    log = lambda s: print(s, flush=True)
    log(f"against n at d = {args.d}")
    by_n = sweep(points, args.d, "n", args.batch, args.repeats, log)
    log(f"against d at n = {args.n}")
    by_d = sweep(points, args.n, "d", args.batch, args.repeats, log)
    paths = {kind: {n: path_length(kind, n) for n in (2, 8, 32)} for kind in ("attention", "gru")}
    out = args.out or DOCS
    os.makedirs(out, exist_ok=True)
    figure(os.path.join(out, "complexity.png"), by_n, by_d, args.d, args.n, args.batch)

    def rows_of(rows, vary):
        return [[r[vary], f"{r['attention']['flops'] / 1e6:.1f}", f"{r['gru']['flops'] / 1e6:.1f}",
                 f"{r['attention']['flops'] / r['gru']['flops']:.2f}",
                 f"{1e3 * r['attention']['seconds']:.2f}", f"{1e3 * r['gru']['seconds']:.2f}",
                 f"{r['attention']['seconds'] / r['gru']['seconds']:.2f}",
                 r["attention"]["steps"], r["gru"]["steps"]] for r in rows]
    header = lambda v: [v, "attention MFLOP / sequence", "GRU MFLOP / sequence", "ratio",
                        f"attention ms / batch of {args.batch}", f"GRU ms / batch of {args.batch}", "ratio",
                        "attention sequential steps", "GRU sequential steps"]
    exact = all(r[k]["forward_flops"] == r[k]["predicted_forward_flops"] for r in by_n + by_d
                for k in ("attention", "gru"))
    cross_flops_n, cross_time_n = crossover(by_n, "flops"), crossover(by_n, "seconds")
    cross_flops_d, cross_time_d = crossover(by_d, "flops"), crossover(by_d, "seconds")
    def crossing(what, v, subject="the measured times"):
        """A clause saying where two curves against `what` cross, from crossover()'s answer."""
        if v is None:
            return f"{subject} do not cross within the {what} measured"
        if v == "several":
            return f"{subject} cross more than once against {what} (they are close there, and timing noise decides)"
        return f"{subject} cross at {what} about {v:.0f}"
    shows = (("The counted operations of both layers follow the formulas above exactly, so their orders "
              "are Table 1's, and their ratio crosses 1 where n = d. ") if exact else
             "The counted operations do not match the formulas above: the layers changed; read the tables. ")
    shows += ("Sequential steps and path length are 1 for self-attention at every n and n for the GRU. "
              f"Of the measured times, {crossing('n', cross_time_n, 'the curves against n')}; "
              f"{crossing('d', cross_time_d, 'the curves against d')}.")
    quick = "\n**--quick run: tiny sizes, one repeat; these numbers are not results.**\n" if args.quick else ""
    page = f"""# The paper's Table 1, measured: self-attention against a recurrent layer

Measured by `{command('complexity', argv)}` ({machine()}, {how_many(threads, 'BLAS thread')}, no GPU).
{quick}
Table 1 of the paper compares a self-attention layer with a recurrent one on three counts,
for sequences of length n and representations of width d:

| layer type | operations per layer | sequential operations | maximum path length |
|---|---|---|---|
| self-attention | O(n^2 d) | O(1) | O(1) |
| recurrent | O(n d^2) | O(n) | O(n) |
| convolutional (kernel k) | O(k n d^2) | O(1) | O(log_k n) |

Here the first two rows are measured on npformer's own layers: multi-head self-attention
(4 heads, with its four d x d projections) and the GRU (input and hidden width d), each run
forward and backward on a batch of {args.batch} sequences (the convolutional row is not
measured: npformer has no convolutional layer). The [concepts page](../concepts.md) explains the table.

**Counted operations.** Every matrix product the layer performs passes through a counting
array type, which adds 2 m k n floating-point operations for an (m, k) by (k, n) product.
Elementwise work (softmax, gates) is left out: it is O(n^2) and O(n d) and does not change the
picture. {"The forward counts agree exactly with" if exact else "The forward counts DIFFER from"} the formulas read off
the shapes: self-attention 8 n d^2 + 4 n^2 d (the projections, then the scores and the weighted
sum), the GRU 12 n d^2 (the input side 6 n d^2, the recurrent side 6 d^2 at each of n steps).
Their ratio is 2/3 + n / (3d): equal to 1 exactly at **n = d**, the crossover the table predicts.

**Time** is the fastest of {args.repeats} passes. Operations per layer is not the whole story for
time: the GRU's n steps must run one after another, each a small product that keeps the
machine's cores less busy than attention's few large ones.

## Against sequence length n, at d = {args.d}

{markdown_table(header("n"), rows_of(by_n, "n"))}

Forward and backward together, {crossing("n", cross_flops_n, "the counted operations")} (predicted: n = d = {args.d});
{crossing("n", cross_time_n)}.

## Against width d, at n = {args.n}

{markdown_table(header("d"), rows_of(by_d, "d"))}

Forward and backward together, {crossing("d", cross_flops_d, "the counted operations")} (predicted: d = n = {args.n});
{crossing("d", cross_time_d)}.

![operations and time against n and d](complexity.png)

## Sequential steps and path length

The sequential steps above are counted while the layers run: self-attention computes every
position in one step; the GRU takes one step per position, each waiting for the one before.
The path length is read off the gradient: with the gradient of output position n - 1 only,
the layer's backward gives a nonzero gradient at input position 0 for both layers, but in
self-attention that dependence is one step long, while in the GRU it is carried back through
every one of the n steps of the recurrence (the count is of the steps whose incoming gradient
is nonzero).

{markdown_table(["layer", "n = 2", "n = 8", "n = 32"],
                [["self-attention"] + [paths["attention"][n] for n in (2, 8, 32)],
                 ["GRU"] + [paths["gru"][n] for n in (2, 8, 32)]])}

## What this shows

{shows}

## What it does not show

It is one machine with {how_many(threads, 'BLAS thread')} and no GPU, where the GRU's sequential steps cost
little more than their arithmetic; on a GPU the sequential steps, not the operation count,
would dominate the GRU's time. Whether a layer learns a task well is a different question
(see [the RNN against the Transformer](rnn_vs_transformer.md)).
"""
    raw = {"settings": vars(args), "blas_threads": threads, "by_n": by_n, "by_d": by_d,
           "path_length": {k: {str(n): v for n, v in p.items()} for k, p in paths.items()}}
    log(f"wrote {write_outputs(out, 'complexity', page, raw)}")


if __name__ == "__main__":
    main()
