"""The training loop: batches, loss, backward, clipping, Adam; held-out evaluation; checkpoints
that resume exactly.  docs: training.md

One step:

    batch  = make_batch(task, task.sample(data_rng, B))          host, from a seeded generator
    for each of the cfg.replicas parts of the batch, in a thread of its own (parallel.py):
        logits = model.forward(src, tgt_in)                      (B_k,T,V)
        loss, dlogits = cross_entropy(logits, tgt_out, label_smoothing)   the only number read back
        model.backward(dlogits)                                  gradients summed over the parts
    clip_grad_norm(grads); adam.step(grads, lr(step))

Every `eval_every` steps the held-out set is decoded greedily and scored (exact match,
token accuracy), one line goes to DIR/metrics.jsonl and DIR/model.npz is rewritten
atomically with everything a resume needs: parameters, Adam's m and v and step, the step,
and the states of the batch and dropout generators. A run resumed from it takes the same
steps with the same batches and masks as one that never stopped, so on NumPy its final
parameters are the same bit for bit (on CuPy, to rounding: its add.at adds with atomics in no
fixed order).
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from npformer.backend import get_backend, name_of, to_numpy
from npformer.errors import ConfigError, NpformerError
from npformer.model import CheckpointError, Transformer, TransformerConfig
from npformer.model.checkpoint import load_into, read
from npformer.model.rnn import RNNConfig, RNNSeq2Seq
from npformer.train.optim import SCHEDULES, Adam, clip_grad_norm, learning_rate
from npformer.train.parallel import DataParallel, default_replicas
from npformer.train.tasks import BOS, EOS, EVAL_SEED, PAD, TASKS, Task, heldout, make_batch, pad, score, strip

CHECKPOINT = "model.npz"
MODELS = {"transformer": None, "rnn": None, "rnn-attention": "bahdanau"}  # name -> the RNN's attention
METRICS = "metrics.jsonl"


class TrainingDiverged(NpformerError):
    """The loss (or a parameter) stopped being finite; the last good checkpoint was left alone."""


@dataclass
class TrainConfig:
    """Everything that decides a run. The defaults are the recipe `npformer train` runs."""

    # the task
    task: str = "reverse"
    n_symbols: int = 10
    min_len: int = 1
    max_len: int = 16
    # the model (Transformer base sizes scaled down; post-norm as in the paper)
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 512
    n_layers: int = 2
    dropout: float = 0.1
    norm: str = "post"
    model: str = "transformer"     # or "rnn" (one context vector), "rnn-attention" (Bahdanau); MODELS
    attention_score: str = "scaled_dot"  # the Transformer's score function (layers/scores.py)
    # optimisation
    steps: int = 4000
    batch_size: int = 64
    lr: float = 1e-3               # the peak rate, reached at the end of warm-up
    warmup: int = 200
    schedule: str = "paper"        # "paper": LR-1, then 1/sqrt(step) decay; "constant": LR-2
    clip: float = 1.0              # global gradient norm bound; 0 turns clipping off
    label_smoothing: float = 0.0
    # evaluation and seeds
    eval_every: int = 250
    eval_size: int = 500
    target: float = 0.99           # stop once held-out exact match reaches this
    seed: int = 0                  # parameters, batches and dropout masks
    # speed: the batch runs in this many parts, each in a thread with a replica of the model
    # (parallel.py); part of the recipe, since each replica draws its own dropout masks.
    # None: 2 on the CPU, 1 on a GPU (default_replicas), fixed when the run starts
    replicas: int = None
    eval_seed: int = EVAL_SEED     # the held-out set
    dtype: str = "float32"

    def __post_init__(self):
        Task(self.task, self.n_symbols, self.min_len, self.max_len)  # raises ConfigError if it cannot work
        for name in ("steps", "batch_size", "eval_every", "eval_size", "replicas"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.warmup < 0 or self.lr <= 0 or self.clip < 0:
            raise ConfigError("lr must be positive, and warmup and clip must not be negative.")
        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}.")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if self.schedule == "paper" and self.warmup < 1:
            raise ConfigError("the paper's schedule needs warmup >= 1.")
        if self.seed == self.eval_seed:
            raise ConfigError(f"seed {self.seed} is the held-out set's seed; choose another so training "
                              "batches are not the held-out sequences.")

    @property
    def task_spec(self):
        return Task(self.task, self.n_symbols, self.min_len, self.max_len)

    def model_config(self):
        V = self.task_spec.vocab
        if self.model != "transformer":                          # the RNN: embedding, hidden and attention width d_model
            return RNNConfig(src_vocab=V, tgt_vocab=V, d_embed=self.d_model, d_hidden=self.d_model,
                             attention=MODELS[self.model], d_attn=self.d_model, pad_id=PAD)
        return TransformerConfig(src_vocab=V, tgt_vocab=V, d_model=self.d_model, n_heads=self.n_heads,
                                 d_ff=self.d_ff, n_layers=self.n_layers, dropout=self.dropout,
                                 norm=self.norm, pad_id=PAD, attention_score=self.attention_score)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ----------------------------------------------------------------------------- evaluation

def evaluate(model, task, sources, batch_size=500):
    """Greedy-decode `sources` and score them against the task's targets.

    Returns {"exact_match", "token_accuracy", "produced": list of token lists (before EOS)}.
    """
    produced, expected = [], []
    for i in range(0, len(sources), batch_size):
        chunk = sources[i:i + batch_size]
        batch = make_batch(task, chunk)
        out = model.greedy_decode(batch.src, max_len=batch.tgt_out.shape[1], bos_id=BOS, eos_id=EOS)  # (B,L) host
        expected.append(batch.tgt_out)
        produced.append(out)
    T = max(e.shape[1] for e in expected)
    expected_all = np.concatenate([pad(list(e), T) for e in expected])       # (N,T)
    produced_all = np.concatenate([pad(list(p), T) for p in produced])       # (N,T)
    token_accuracy, exact = score(expected_all, produced_all)
    return {"exact_match": exact, "token_accuracy": token_accuracy,
            "produced": [strip(p) for p in produced_all]}


def samples(task, sources, produced, n=3):
    """Lines `source -> expected | produced` for the first n sequences."""
    show = lambda seq: " ".join(str(int(t)) for t in seq)
    lines = []
    for s, p in zip(sources[:n], produced[:n]):
        e = task.target(s).tolist()
        mark = "ok" if p == e else "WRONG"
        lines.append(f"{show(s)}  ->  expected {show(e)}  |  produced {show(p)}  {mark}")
    return lines


# ----------------------------------------------------------------------------- the trainer

@dataclass
class Result:
    step: int
    exact_match: float
    token_accuracy: float
    reached: bool
    wall_s: float
    samples: list = field(default_factory=list)


class Trainer:
    """A run: model, optimiser, generators and the held-out set, from a TrainConfig.

    trainer = Trainer(TrainConfig(task="copy"), out_dir="runs/copy"); result = trainer.run()
    Trainer.resume("runs/copy") picks a run up from its checkpoint.
    """

    def __init__(self, cfg, backend=None, out_dir=None):
        self.xp = get_backend(backend)
        if cfg.replicas is None:                                 # fixed now, and saved with the run
            cfg = replace(cfg, replicas=default_replicas(self.xp))
        self.cfg = cfg
        self.task = cfg.task_spec
        self.out_dir = out_dir
        model_class = Transformer if cfg.model == "transformer" else RNNSeq2Seq
        self.model = model_class(cfg.model_config(), seed=cfg.seed, dtype=cfg.dtype, backend=self.xp)
        self.params = self.model.parameters()
        self.grads = self.model.gradients()
        self.parallel = DataParallel(self.model, cfg.replicas)   # the batch in cfg.replicas parts, one thread each
        self.adam = Adam(self.params, betas=(0.9, 0.98), eps=1e-9)
        self.data_rng = np.random.default_rng(cfg.seed)          # host: batches
        self.step = 0
        self.wall_s = 0.0                                        # training time of earlier sessions
        self._t0 = None                                          # start of this session's run(), on the clock
        self.since_eval = [0.0, 0]                               # loss sum, steps since the last evaluation (and save)
        self.saved_step = None
        self.last_eval = None
        self.last_produced = None
        self.heldout = heldout(self.task, cfg.eval_size, cfg.eval_seed)

    # ------------------------------------------------------------------ files

    def path(self, name):
        return os.path.join(self.out_dir, name)

    def state_meta(self):
        """The JSON part of a resume: step, configuration, generator states, clocks."""
        return {"step": self.step, "train": asdict(self.cfg), "backend": name_of(self.xp),
                "data_rng": self.data_rng.bit_generator.state,
                "wall_s": self.wall_s + self._clock(), "eval": self.last_eval}

    def save(self):
        """Write DIR/model.npz atomically, with the optimiser state; never a non-finite model."""
        if self.out_dir is None:
            return
        xp = self.xp
        if not all(bool(xp.isfinite(p).all()) for p in self.params.values()):
            raise TrainingDiverged(f"a parameter stopped being finite by step {self.step}; {self._kept()}")
        state = self.adam.state_dict()
        extra = {"adam/step": np.array(state["step"])}
        for k, rng in enumerate(self.parallel.dropout_states()):
            extra[f"dropout_rng/{k}"] = rng                      # replica k's generator
        for name in self.params:
            extra[f"adam/m/{name}"] = to_numpy(state["m"][name])
            extra[f"adam/v/{name}"] = to_numpy(state["v"][name])
        self.model.save(self.path(CHECKPOINT), extra=extra, meta=self.state_meta())
        self.saved_step = self.step

    def _kept(self):
        if self.saved_step is None:
            return "no checkpoint had been written yet."
        return f"the checkpoint {self.path(CHECKPOINT)} from step {self.saved_step} is left as it was."

    def log_metrics(self, record):
        if self.out_dir is not None:
            with open(self.path(METRICS), "a") as f:
                f.write(json.dumps(record) + "\n")

    @classmethod
    def resume(cls, out_dir, backend=None, **overrides):
        """The run saved in out_dir, ready to continue. overrides: TrainConfig fields to change
        that do not change the training itself (steps, eval_every, eval_size, target)."""
        path = os.path.join(out_dir, CHECKPOINT)
        header, params, extra = read(path)
        meta = header.get("meta", {})
        if "train" not in meta or "data_rng" not in meta:
            raise CheckpointError(f"{path} was not written by `npformer train`, so it cannot be resumed.")
        saved = TrainConfig.from_dict(meta["train"])
        allowed = {"steps", "eval_every", "eval_size", "target"}
        for name, value in overrides.items():
            if name not in allowed and value != getattr(saved, name):
                raise ConfigError(f"--{name.replace('_', '-')} {value} differs from the run being resumed "
                                  f"({getattr(saved, name)}); only --steps, --eval-every, --eval-size and "
                                  "--target may change on --resume.")
        cfg = TrainConfig.from_dict({**asdict(saved), **overrides})
        self = cls(cfg, backend, out_dir)
        load_into(self.model, params, path)
        names = list(self.params)
        self.adam.load_state_dict({"step": int(extra["adam/step"]),
                                   "m": {k: extra[f"adam/m/{k}"] for k in names},
                                   "v": {k: extra[f"adam/v/{k}"] for k in names}})
        self.data_rng.bit_generator.state = meta["data_rng"]
        states = [extra[f"dropout_rng/{k}"] for k in range(cfg.replicas) if f"dropout_rng/{k}" in extra]
        self.resumed_exactly = self.parallel.set_dropout_states(states, cfg.seed, meta["step"])
        self.step = self.saved_step = meta["step"]
        self.wall_s = meta["wall_s"]
        self.last_eval = meta["eval"]
        _truncate_metrics(os.path.join(out_dir, METRICS), self.step)
        return self

    # ------------------------------------------------------------------ steps

    def lr(self, step):
        c = self.cfg
        return learning_rate(step, c.schedule, c.lr, c.warmup, c.d_model)

    def train_step(self):
        """One optimiser step on a fresh batch; returns (loss, number of target tokens)."""
        step = self.step + 1
        batch = make_batch(self.task, self.task.sample(self.data_rng, self.cfg.batch_size))
        # zero the gradients, then forward, loss and backward over the batch's parts (parallel.py)
        loss = self.parallel.step(batch.src, batch.tgt_in, batch.tgt_out, pad_id=PAD,
                                  label_smoothing=self.cfg.label_smoothing)
        if not math.isfinite(loss):                              # before any parameter changes
            raise TrainingDiverged(f"the loss became {loss} at step {step}; {self._kept()} "
                                   "Try a lower --lr or a tighter --clip.")
        clip_grad_norm(self.grads, self.cfg.clip)
        self.adam.step(self.grads, self.lr(step), self.parallel)  # the update shared among the threads too
        self.step = step
        self.since_eval[0] += loss
        self.since_eval[1] += 1
        return loss, batch.n_target_tokens

    def evaluate(self):
        """Score the held-out set, log one metrics line, save the checkpoint. Returns the record."""
        ev = evaluate(self.model, self.task, self.heldout)
        loss_sum, n = self.since_eval
        record = {"step": self.step, "train_loss": loss_sum / n if n else None,
                  "lr": self.lr(max(self.step, 1)), "exact_match": ev["exact_match"],
                  "token_accuracy": ev["token_accuracy"], "wall_s": round(self.wall_s + self._clock(), 3)}
        self.since_eval = [0.0, 0]
        self.last_eval = record
        self.log_metrics(record)
        self.save()
        self.last_produced = ev["produced"]
        return record

    def _clock(self):
        return time.perf_counter() - self._t0 if self._t0 is not None else 0.0

    # ------------------------------------------------------------------ the loop

    def run(self, progress=True, on_step=None, write=print):
        """Train until cfg.steps or until held-out exact match reaches cfg.target.

        progress: show a tqdm bar (loss, lr, target tokens/s); None: only on a terminal.
        on_step(trainer) is called after each step (tests use it to interrupt a run).
        write(line) prints the evaluation lines.
        """
        from tqdm import tqdm

        cfg = self.cfg
        self._t0 = time.perf_counter()
        reached = self.last_eval is not None and self.last_eval["exact_match"] >= cfg.target
        bar = tqdm(total=cfg.steps, initial=self.step, disable=None if progress is None else not progress,
                   desc=cfg.task, unit="step", dynamic_ncols=True, leave=False)
        if not bar.disable:
            write = tqdm.write                                   # prints above the bar, not through it
        tokens, t_mark, shown = 0, time.perf_counter(), []
        try:
            while self.step < cfg.steps and not reached:
                loss, n_tok = self.train_step()
                tokens += n_tok
                shown.append(loss)
                bar.update(1)
                if not bar.disable and (self.step % 10 == 0 or self.step == cfg.steps):
                    now = time.perf_counter()
                    bar.set_postfix_str(f"loss {sum(shown) / len(shown):.4f}  lr {self.lr(self.step):.2e}  "
                                        f"{tokens / max(now - t_mark, 1e-9):,.0f} tok/s")
                    tokens, t_mark, shown = 0, now, []
                if self.step % cfg.eval_every == 0:
                    rec = self.evaluate()
                    reached = rec["exact_match"] >= cfg.target
                    write(_eval_line(rec))
                if on_step is not None:
                    on_step(self)
        finally:
            bar.close()
        if self.last_eval is None or self.last_eval["step"] != self.step:
            write(_eval_line(self.evaluate()))                   # the final state is always scored and saved
        elif self.last_produced is None:                         # resumed a finished run: decode for the samples
            self.last_produced = evaluate(self.model, self.task, self.heldout)["produced"]
        self.wall_s += self._clock()
        self._t0 = None
        return Result(step=self.step, exact_match=self.last_eval["exact_match"],
                      token_accuracy=self.last_eval["token_accuracy"],
                      reached=self.last_eval["exact_match"] >= cfg.target, wall_s=self.wall_s,
                      samples=samples(self.task, self.heldout, self.last_produced))


def _eval_line(rec):
    loss = "" if rec["train_loss"] is None else f"  loss {rec['train_loss']:.4f}"
    return (f"step {rec['step']:5d}{loss}  held-out exact match {rec['exact_match']:.3f}  "
            f"token accuracy {rec['token_accuracy']:.4f}")


# ----------------------------------------------------------------------------- resume helpers

def _truncate_metrics(path, step):
    """Drop metrics lines after `step`: the resumed run writes them again."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and json.loads(ln)["step"] <= step]
    with open(path, "w") as f:
        f.writelines(lines)


def fresh(cfg, out_dir, backend=None, force=False):
    """A new run in out_dir; refuses to replace an earlier run's checkpoint unless force."""
    ckpt = os.path.join(out_dir, CHECKPOINT)
    if os.path.exists(ckpt) and not force:
        raise ConfigError(f"{ckpt} already holds a run: pass --resume to continue it, --force to start "
                          "over, or another --out.")
    os.makedirs(out_dir, exist_ok=True)
    trainer = Trainer(cfg, backend, out_dir)
    if os.path.exists(trainer.path(METRICS)):
        os.remove(trainer.path(METRICS))
    return trainer


__all__ = ["TrainConfig", "Trainer", "Result", "TrainingDiverged", "evaluate", "samples", "fresh", "TASKS"]
