"""`npformer exercise check FILE --train`: the learner's layer in place of the package's, in
every instance of the default model, training the reverse task beside an untouched model
from the same seed (the same parameters, batches and dropout masks), both loss curves printed.

Each of the model's instances gets a learner's object that takes the instance's parameter
and gradient dicts as its own (so the optimiser, clipping and zero_grad see the same arrays)
and whose forward and backward stand in for the instance's. Decoding with cached keys and
values (evaluation only) keeps the package's forward; training never uses it.
"""

import math

from npformer import layers
from npformer.exercises.checker import ExerciseError
from npformer.train.loop import TrainConfig, Trainer

# exercise -> (the learner's object for one package instance, the forward standing in for it)
SWAPS = {
    "linear": (lambda cls, layer: cls(*layer.params["W"].shape), lambda mine, layer: _same_dtype(mine.forward)),
    "layernorm": (lambda cls, layer: cls(layer.params["gamma"].shape[0], layer.eps),
                  lambda mine, layer: _same_dtype(mine.forward)),
    "feedforward": (lambda cls, layer: cls(*layer.params["W1"].shape), lambda mine, layer: _same_dtype(mine.forward)),
    "embedding": (lambda cls, layer: cls(*layer.params["W"].shape),
                  lambda mine, layer: lambda ids, checked=False: mine.forward(ids)),
    "multihead": (lambda cls, layer: cls(layer.d_model, layer.n_heads), lambda mine, layer: _attention(mine, layer)),
}


def _same_dtype(forward):
    """The model trains in float32; a float64 constant in a plain forward must not upcast it."""
    def run(x):
        return forward(x).astype(x.dtype, copy=False)
    return run


def _attention(mine, layer):
    package_forward = layer.forward

    def forward(x, keep=None, memory=None, kv_cache=None):
        if kv_cache is not None:                                 # decoding step by step: the package's
            return package_forward(x, keep, memory, kv_cache)
        return mine.forward(x, keep, memory).astype(x.dtype, copy=False)
    return forward


def require_swap(ex):
    """One sentence, before any check runs, when --train cannot use this exercise's class."""
    if ex.name not in SWAPS:
        raise ExerciseError(f"--train swaps one of the model's layers, and the {ex.name} exercise is not one; "
                            f"it works for {', '.join(SWAPS)}.")


def swap_in(model, ex, cls):
    """Put a learner's object in every instance of the exercise's layer; returns how many."""
    make, stand_in = SWAPS[ex.name]
    package_cls = getattr(layers, ex.train)
    n = 0
    for _, layer in model.named_layers():
        if type(layer) is package_cls:
            mine = make(cls, layer)
            mine.params, mine.grads = layer.params, layer.grads  # the model's own arrays
            layer.forward, layer.backward = stand_in(mine, layer), mine.backward
            n += 1
    return n


def train_side_by_side(ex, cls, steps=300, every=25, seed=0, write=print, **sizes):
    """Train reverse with the package's layer and with the learner's, step by step from one seed.
    sizes: TrainConfig fields (the default model unless given). Returns both loss curves."""
    require_swap(ex)
    cfg = TrainConfig(task="reverse", steps=steps, seed=seed, **sizes)
    package, yours = Trainer(cfg, backend="numpy"), Trainer(cfg, backend="numpy")
    n = sum(swap_in(replica, ex, cls) for replica in yours.parallel.replicas)
    write(f"training reverse for {steps} steps from seed {seed}: the package's {ex.train} and yours "
          f"({n // len(yours.parallel.replicas)} instances in the model), mean loss every {every} steps")
    write(f"{'step':>6}  {'package':>9}  {'yours':>9}")
    curves = {"package": [], "yours": []}
    for step in range(1, steps + 1):
        for name, trainer in (("package", package), ("yours", yours)):
            curves[name].append(trainer.train_step()[0])
        if step % every == 0 or step == steps:
            k = (step - 1) % every + 1
            means = [sum(curves[name][-k:]) / k for name in curves]
            write(f"{step:>6}  {means[0]:>9.4f}  {means[1]:>9.4f}")
        if not math.isfinite(curves["yours"][-1]):
            write(f"your {ex.cls}'s loss became {curves['yours'][-1]} at step {step}: the checks passed in float64 "
                  "on small shapes, so look for a step that loses precision in float32 (a difference of large "
                  "numbers) or a constant that overflows.")
            return curves
    k = min(every, steps)
    first, last = curves["yours"][0], sum(curves["yours"][-k:]) / k
    ref = sum(curves["package"][-k:]) / k
    if abs(last - ref) > 0.15 * ref + 0.05:
        verdict = f"your {ex.cls} does not follow the package's layer: compare the two columns"
    elif last < 0.5 * first:
        verdict = (f"your {ex.cls} learns the task as the package's layer does (the curves part slowly: the two "
                   "round differently in float32, and training amplifies it)")
    else:
        verdict = f"your {ex.cls} follows the package's layer; give it more --steps to see both learn"
    write(f"loss {first:.3f} at step 1; over the last {k} steps {last:.3f} (the package's {ref:.3f}): {verdict}.")
    return curves
