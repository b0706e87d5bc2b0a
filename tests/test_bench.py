"""`npformer bench`: its output format at tiny sizes, and the FLOP count it reports. Timings are
never asserted on: the benchmark measures, the tests only check it runs and says everything."""

import dataclasses
import re

import numpy as np
import pytest

from npformer import backend
from npformer.bench import SMOKE, run
from npformer.bench.memory import measure
from npformer.bench.steps import NpformerStep
from npformer.bench.workloads import WORKLOADS, Workload, batches, reverse_batch, step_flops
from npformer.cli import main

NUMBER = r"\d+(\.\d+)?"


def _row(out, name):
    rows = [line for line in out.splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 1, f"expected one row for {name} in:\n{out}"
    return rows[0].split()


def test_smoke_run_prints_every_ratio_the_time_to_solve_and_writes_the_table(tmp_path, capsys):
    pytest.importorskip("torch")
    md = tmp_path / "docs" / "benchmarks.md"
    run(smoke=True, markdown=str(md))                            # the library writes the page; the CLI's --smoke never does
    out = capsys.readouterr().out
    assert "npformer bench: backend " in out and "GFLOP/s measured" in out
    for w in SMOKE:
        cells = _row(out, w.name)                                # name, np ms, ops, torch ms, ratio, ...
        assert all(re.fullmatch(NUMBER, c) for c in cells[1:5]), cells   # npformer ms, ops/step, PyTorch ms, ratio
    assert re.search(r"^  npformer +(reached|not reached)", out, re.M), out
    assert re.search(r"^  torch +(reached|not reached)", out, re.M), out
    text = md.read_text()
    assert "| workload | sizes | npformer ms/step | array ops/step | PyTorch ms/step | npformer / PyTorch |" in text
    assert all(f"| {w.name} |" in text for w in SMOKE)
    assert "threads:" in text and "matrix-multiply rate measured alone" in text and "torch 2." in text
    assert "## Time to solve" in text and "| npformer |" in text and "| PyTorch |" in text


def test_without_torch_npformer_is_timed_alone(tmp_path, capsys):
    md = tmp_path / "bench.md"
    timings, solves = run(smoke=True, with_torch=False, solve=False, memory=False, markdown=str(md))
    out = capsys.readouterr().out
    for w in SMOKE:
        cells = _row(out, w.name)
        assert re.fullmatch(NUMBER, cells[1]) and int(cells[2]) > 0 and cells[3] == "-" and cells[4] == "-", cells
    assert [t.workload.name for t in timings] == [w.name for w in SMOKE] and solves == []
    assert all(len(t.times["npformer"]) >= 1 for t in timings)
    assert "| tiny |" in md.read_text()


def test_a_gpu_page_is_measured_not_judged():
    from npformer.bench import report
    timings, _ = run(["reference", "large"], with_torch=False, solve=False, memory=False, count=False, seconds=0.0,
                     min_steps=1, max_steps=1, warmup=1, write=lambda s: None)
    env = {"machine": "a GPU", "threads": 1, "versions": {}, "matmul": 1e12, "load": [0.0]}
    cpu = report.markdown(timings, [], None, {**env, "backend": "numpy"}, "npformer bench")
    gpu = report.markdown(timings, [], None, {**env, "backend": "cupy"}, "npformer bench --backend cupy")
    assert report.PERFORMANCE_LINK in cpu and report.PERFORMANCE_LINK in gpu
    assert "# Benchmarks\n" in cpu and "<= 0.70" in cpu and "70% of matmul" in cpu and report.GPU_NOTE not in cpu
    assert "# Benchmarks on a GPU" in gpu and "<=" not in gpu and report.GPU_NOTE in gpu
    large = timings[1]
    assert large.matmul_rate > 0 and len(large.times["matmul"]) >= 1  # the product timed alongside the steps
    unreachable = dataclasses.replace(large, matmul_flops=large.matmul_flops * 1e6)  # a million times faster
    assert "MISSED" not in report.line(unreachable, 1.0, targets=False)
    assert "MISSED" in report.line(unreachable, 1.0)                  # the fraction is missed
    alone = dataclasses.replace(large, times={"npformer": large.times["npformer"]})
    assert alone.matmul_rate is None and "MISSED" in report.line(alone, 1e15)  # else the run's own rate


def test_an_unknown_workload_is_a_one_line_error(capsys):
    assert main(["bench", "--workloads", "reference,huge", "--no-torch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "huge" in err[0] and "reference" in err[0]


def test_the_five_workloads_are_the_issue_s():
    by = {w.name: w for w in WORKLOADS}
    assert list(by) == ["reference", "reference-nodrop", "medium", "large", "deep"]
    assert (by["reference"].d_model, by["reference"].batch, by["reference"].dropout) == (128, 64, 0.1)
    assert by["reference-nodrop"].dropout == 0.0
    assert (by["large"].d_model, by["large"].d_ff, by["large"].max_len, by["large"].batch) == (512, 2048, 128, 16)
    assert (by["deep"].n_layers, by["deep"].dropout) == (6, 0.1)


def test_reverse_batches_reverse_and_pad():
    w = Workload("t", 8, 2, 16, 1, batch=5, min_len=1, max_len=6, dropout=0.0)
    src, tgt_in, tgt_out = reverse_batch(np.random.default_rng(3), w)
    for s, ti, to in zip(src, tgt_in, tgt_out):
        row = s[s != 0]
        assert ti[0] == 1 and list(ti[1:len(row) + 1]) == list(row[::-1])
        assert list(to[:len(row)]) == list(row[::-1]) and to[len(row)] == 2 and not to[len(row) + 1:].any()
    assert tgt_in.shape[1] == src.shape[1] + 1


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_step_flops_is_the_sum_over_every_matrix_product_of_a_step(monkeypatch, dropout):
    """Count 2mkn over every matrix product of a real training step (the strict backend routes
    each `@` through StrictArray.__matmul__, and each xp.matmul through strict.matmul) and
    compare with the formula the FLOP/s figure uses."""
    counted = []

    def product(a, b, out=None):
        sa, sb = tuple(a.shape), tuple(b.shape)
        if len(sa) >= 2 and len(sb) >= 2:                        # a sum written as ones @ x: not a matrix product
            batch = int(np.prod(np.broadcast_shapes(sa[:-2], sb[:-2]))) if len(sa) > 2 or len(sb) > 2 else 1
            counted.append(2 * batch * sa[-2] * sa[-1] * sb[-1])
        a, b, out = (x._a if isinstance(x, backend.StrictArray) else x for x in (a, b, out))
        return backend.StrictArray(np.matmul(a, b, out=out))

    def operator(reflected):
        return lambda self, other: product(other, self) if reflected else product(self, other)

    w = Workload("t", 16, 2, 24, 2, batch=3, min_len=2, max_len=5, dropout=dropout, vocab=11)
    step = NpformerStep(w.config(), backend="strict")
    batch = batches(w, 1, seed=4)[0]
    monkeypatch.setattr(backend.StrictArray, "__matmul__", operator(False))
    monkeypatch.setattr(backend.StrictArray, "__rmatmul__", operator(True))
    monkeypatch.setattr(backend.strict, "matmul", product)
    step.step(step.to_device(batch))
    assert sum(counted) == step_flops(w, batch[0].shape[1], batch[1].shape[1])


def test_peak_memory_of_a_step_is_measured_where_linux_allows():
    w = Workload("t", 16, 2, 24, 1, batch=4, min_len=3, max_len=5, dropout=0.1)
    peak = measure("npformer", w)
    assert peak is None or peak > 0


def test_a_float32_training_step_makes_no_float64_array(monkeypatch):
    """Float32 end to end: every array a float32 step makes (the strict backend wraps each one)
    stays float32; a Python float or a NumPy float64 scalar in the math would upcast silently."""
    made = []
    original = backend.StrictArray.__init__

    def recording(self, a):
        if a.dtype == np.float64:
            made.append(a.shape)
        original(self, a)

    w = Workload("t", 16, 2, 24, 2, batch=3, min_len=2, max_len=5, dropout=0.1, vocab=11)
    step = NpformerStep(w.config(), backend="strict")
    batch = step.to_device(batches(w, 1, seed=2)[0])
    monkeypatch.setattr(backend.StrictArray, "__init__", recording)
    step.step(batch)
    assert not made, f"float64 arrays of shapes {made} in a float32 step"


def test_the_reference_step_stays_under_its_array_operation_ceiling():
    """On a GPU every array operation is a kernel launched from Python: the reference workload's
    step may not silently grow past its ceiling (bench/count.py). The optimiser's part is a
    handful of operations over the flat arena, whatever the number of parameters."""
    from npformer.bench.count import REFERENCE_CEILING, operations_per_step
    from npformer.bench.workloads import BY_NAME
    ops = operations_per_step(BY_NAME["reference"], sites=True)
    optimiser = sum(n for site, n in ops.sites.items() if site.startswith("npformer/train/optim.py"))
    assert 0 < ops.n <= REFERENCE_CEILING, f"{ops.n} array operations per step:\n{ops.sites.most_common(15)}"
    assert 0 < optimiser <= 20, ops.sites
