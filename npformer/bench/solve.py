"""Time to solve: steps and seconds for the default `npformer train` recipe to reach its target
(99% exact match on the held-out reverse task), beside the PyTorch reference trained the same way.

Both follow TrainConfig's defaults: the same batches (the same seeded data generator), the
same warm-up schedule, gradient clipping and Adam settings, and the same held-out set scored
by greedy decoding every `eval_every` steps. Their steps are interleaved, in blocks taken in
turn, so load from elsewhere on the machine slows both alike. Seconds count training steps
only; evaluation is reported apart (PyTorch's decoder keeps no key/value cache).
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from npformer.bench.harness import PAUSE_S
from npformer.bench.torch_reference import build as build_torch
from npformer.train.loop import TrainConfig, Trainer, evaluate
from npformer.train.tasks import make_batch


@dataclass
class Solve:
    framework: str
    step: int = 0                  # steps taken
    reached: bool = False
    exact_match: float = 0.0
    train_s: float = 0.0           # seconds in training steps
    eval_s: float = 0.0            # seconds in evaluations


class _TorchRun:
    """The PyTorch reference under TrainConfig's recipe; the learning rate comes from Trainer.lr."""

    def __init__(self, cfg, device):
        self.cfg, self.task = cfg, cfg.task_spec
        self.ref = build_torch(cfg.model_config().to_dict(), device=device, seed=cfg.seed, lr=cfg.lr)
        self.data_rng = np.random.default_rng(cfg.seed)           # the same batches as Trainer's
        self.step = 0

    def train_step(self, lr):
        batch = make_batch(self.task, self.task.sample(self.data_rng, self.cfg.batch_size))
        self.ref.step(self.ref.to_device((batch.src, batch.tgt_in, batch.tgt_out)), lr=lr, clip=self.cfg.clip)
        self.step += 1


def time_to_solve(backend="numpy", with_torch=True, cfg=None, write=print):
    """Train npformer (and PyTorch) with the default recipe until each reaches cfg.target or
    cfg.steps. Returns a list of Solve.

    The two take turns in blocks of steps that end on evaluation steps, with a pause before
    each block so that neither runs beside the other's still-spinning threads (harness.py)."""
    cfg = cfg or TrainConfig()
    trainer = Trainer(cfg, backend)                               # npformer, out_dir None: no files
    runs = {"npformer": (trainer, Solve("npformer"))}
    if with_torch:
        runs["torch"] = (_TorchRun(cfg, "cuda" if backend == "cupy" else "cpu"), Solve("torch"))
    block = math.gcd(cfg.eval_every, 50)                          # steps per turn
    finished, turn = set(), 0
    while len(finished) < len(runs):
        names = list(runs) if turn % 2 == 0 else list(runs)[::-1]
        turn += 1
        for name in names:
            if name in finished:
                continue
            run, solve = runs[name]
            time.sleep(PAUSE_S)
            for _ in range(block):
                step = solve.step + 1
                t0 = time.perf_counter()
                run.train_step() if name == "npformer" else run.train_step(trainer.lr(step))
                _sync(run)
                solve.train_s += time.perf_counter() - t0
                solve.step = step
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    t0 = time.perf_counter()
                    model = run.model if name == "npformer" else run.ref
                    solve.exact_match = evaluate(model, cfg.task_spec, trainer.heldout)["exact_match"]
                    solve.eval_s += time.perf_counter() - t0
                    solve.reached = solve.exact_match >= cfg.target
                    write(f"  time to solve: {name:8} step {step:5d}  exact match {solve.exact_match:.3f}  "
                          f"{solve.train_s:7.1f} s in steps")
                    if solve.reached or step == cfg.steps:
                        finished.add(name)
                        break
    return [s for _, s in runs.values()]


def _sync(run):
    if hasattr(run, "ref"):
        run.ref.synchronize()
    else:
        from npformer.backend import synchronize
        synchronize(run.xp)
