"""The training floor: the toy tasks, Adam and its schedules, the loop with exact resume."""

from npformer.train.loop import Result, TrainConfig, Trainer, TrainingDiverged, evaluate
from npformer.train.optim import Adam, clip_grad_norm, learning_rate, paper_lr, warmup_constant_lr
from npformer.train.tasks import BOS, EOS, PAD, Task, heldout, make_batch

__all__ = ["TrainConfig", "Trainer", "Result", "TrainingDiverged", "evaluate", "Adam", "clip_grad_norm",
           "learning_rate", "paper_lr", "warmup_constant_lr", "Task", "make_batch", "heldout", "PAD", "BOS", "EOS"]
