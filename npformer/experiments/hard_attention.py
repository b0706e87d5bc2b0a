"""Training hard attention needs a gradient estimator: REINFORCE checked in expectation.

    python -m npformer.experiments.hard_attention

Hard attention picks one key instead of mixing them. If it picks the best key by argmax, the
choice is piecewise constant in the scores and backpropagation gets a zero gradient; if it
samples the key from the softmax, the loss is random and what can be differentiated is its
expectation. On a case small enough to enumerate every choice (one query, S keys), this
command computes the exact gradient of the expected loss, then checks that the mean of the
REINFORCE estimator over many samples agrees with it (with and without a baseline, and how
much each spreads), shows the bias of the straight-through Gumbel-softmax estimator against
its temperature, and trains the scores by each estimator to see which one learns to pick
the right key. Writes docs/experiments/hard_attention.md, .json and .png.
"""

import argparse
import os
import sys

import numpy as np

from npformer.experiments import DOCS, command, machine, markdown_table, pyplot, words, write_outputs


def softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))                # (..., S)  row max subtracted
    return e / e.sum(axis=-1, keepdims=True)                     # (..., S)


def toy(S=4, m=3, seed=0):
    """One query's scores s (S,), the keys' values V (S, m) and a target y (m,): choosing key j
    costs L_j = |V_j - y|^2 / 2. Returns (s, V, y)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(S), rng.standard_normal((S, m)), rng.standard_normal(m)


def choice_losses(V, y):
    return 0.5 * ((V - y) ** 2).sum(axis=-1)                     # (S,)  L_j for each choice


def expected_loss(s, V, y):
    """E(s) = sum_j a_j L_j with a = softmax(s): the loss of hard attention, averaged over its choice."""
    return float(softmax(s) @ choice_losses(V, y))


def exact_gradient(s, V, y):
    """dE/ds_i = a_i (L_i - E), from da_j/ds_i = a_j ([i = j] - a_i)."""
    a, L = softmax(s), choice_losses(V, y)
    return a * (L - a @ L)                                       # (S,)


def reinforce(s, V, y, n, rng, baseline=0.0):
    """n samples of the REINFORCE estimator: draw j ~ a, then g = (L_j - b)(e_j - a), since
    d log a_j / ds = e_j - a. Its mean is dE/ds for any b that does not depend on j."""
    a, L = softmax(s), choice_losses(V, y)
    j = rng.choice(len(s), size=n, p=a)                          # (n,)  the sampled keys
    onehot = np.eye(len(s))[j]                                   # (n,S)
    return (L[j] - baseline)[:, None] * (onehot - a)             # (n,S)


def straight_through_gumbel(s, V, y, n, rng, tau):
    """n samples of the straight-through Gumbel-softmax estimator: forward picks
    j = argmax(s + G) (G Gumbel noise: an exact sample of a), backward pretends the choice was
    the relaxed weights w = softmax((s + G) / tau), so g = J_w^T dL/dw with the loss of the
    mixture sum_k w_k V_k evaluated at the one-hot choice. Biased: its mean is not dE/ds."""
    S = len(s)
    G = -np.log(-np.log(rng.random((n, S))))                     # (n,S)  Gumbel(0, 1)
    z = (s + G) / tau                                            # (n,S)
    w = softmax(z)                                               # (n,S)  the relaxed choice
    j = z.argmax(axis=-1)                                        # (n,)  the hard choice: a sample of a
    c = V[j]                                                     # (n,m)  the chosen value
    dw = (c - y) @ V.T                                           # (n,S)  dL/dw_k = (c - y) . V_k
    return w * (dw - (dw * w).sum(axis=-1, keepdims=True)) / tau  # (n,S)  the softmax's backward, / tau


def train(s0, V, y, estimator, steps, lr, rng):
    """Gradient descent on the scores with one estimator ("exact", "reinforce",
    "reinforce+baseline", "st-gumbel"), one sample a step for the sampled ones; returns the
    expected loss after each step. The baseline is a running mean of the losses sampled so far,
    so it never depends on the current step's choice."""
    s, curve, running = s0.copy(), [], None
    S = len(s)
    for _ in range(steps):
        if estimator == "exact":
            g = exact_gradient(s, V, y)
        elif estimator.startswith("reinforce"):
            a = softmax(s)                                       # (S,)
            j = rng.choice(S, p=a)                               # one sampled key
            loss = float(choice_losses(V[j], y))                 # only the chosen key's loss is computed
            b = running if (estimator == "reinforce+baseline" and running is not None) else 0.0
            g = (loss - b) * (np.eye(S)[j] - a)                  # (S,)
            running = loss if running is None else 0.9 * running + 0.1 * loss
        else:
            g = straight_through_gumbel(s, V, y, 1, rng, tau=0.5)[0]
        s -= lr * g
        curve.append(expected_loss(s, V, y))
    return curve


def check(s, V, y, n, rng):
    """Mean and spread of each estimator over n samples, against the exact gradient."""
    exact = exact_gradient(s, V, y)
    E = expected_loss(s, V, y)
    rows = {}
    for name, samples in (("REINFORCE, no baseline", reinforce(s, V, y, n, rng)),
                          ("REINFORCE, baseline b = E", reinforce(s, V, y, n, rng, baseline=E))):
        mean, sd = samples.mean(axis=0), samples.std(axis=0)
        se = sd / np.sqrt(n)
        rows[name] = {"mean": mean.tolist(), "sd": sd.tolist(), "se": se.tolist(),
                      "max_z": float(np.max(np.abs(mean - exact) / se)),
                      "variance": float((sd ** 2).sum())}
    for tau in (2.0, 1.0, 0.5, 0.1):
        samples = straight_through_gumbel(s, V, y, n, rng, tau)
        mean, sd = samples.mean(axis=0), samples.std(axis=0)
        rows[f"straight-through Gumbel, tau = {tau:g}"] = {
            "mean": mean.tolist(), "sd": sd.tolist(), "se": (sd / np.sqrt(n)).tolist(),
            "max_z": float(np.max(np.abs(mean - exact) / (sd / np.sqrt(n)))),
            "variance": float((sd ** 2).sum()), "bias": float(np.linalg.norm(mean - exact))}
    return exact, rows


def figure(path, curves, rows, exact):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    ax = axes[0]
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, lw=1.2, label=name)
    ax.set_xlabel("step of gradient descent on the scores")
    ax.set_ylabel("expected loss E(s)")
    ax.set_title("training the scores with each gradient", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    names = list(rows)
    x = np.arange(len(exact))
    width = 0.8 / (len(names) + 1)
    ax.bar(x, exact, width, color="black", label="exact dE/ds")
    for i, name in enumerate(names):
        ax.bar(x + (i + 1) * width, rows[name]["mean"], width, yerr=rows[name]["sd"], capsize=2,
               label=name, alpha=0.8)
    ax.set_xticks(x + 0.4, [f"s_{i + 1}" for i in x])
    ax.set_xlabel("score")
    ax.set_ylabel("gradient")
    ax.set_title("estimators: mean over the samples, error bar 1 sd of one sample", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200_000, help="samples per estimator for the check")
    ap.add_argument("--steps", type=int, default=300, help="gradient steps for the training comparison")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the training comparison")
    ap.add_argument("--out", default=DOCS)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    seeds = [int(v) for v in args.seeds.split(",")]
    s, V, y = toy()
    L = choice_losses(V, y)
    exact, rows = check(s, V, y, args.samples, np.random.default_rng(1))
    finals = {}
    curves = {}
    for name in ("exact", "reinforce", "reinforce+baseline", "st-gumbel"):
        ends = []
        for seed in seeds:
            curve = train(s, V, y, name, args.steps, 0.5, np.random.default_rng(100 + seed))
            ends.append(curve[-1])
            if seed == seeds[0]:
                curves[name] = curve
        finals[name] = ends
    os.makedirs(args.out, exist_ok=True)
    figure(os.path.join(args.out, "hard_attention.png"), curves, rows, exact)
    best = float(L.min())
    check_rows = [["exact", *[f"{v:+.4f}" for v in exact], "-", "0"]]
    for name, r in rows.items():
        check_rows.append([name, *[f"{m:+.4f}" for m in r["mean"]], f"{r['max_z']:.1f}", f"{r['variance']:.3f}"])
    train_rows = [[name, ", ".join(f"{v:.3f}" for v in ends)] for name, ends in finals.items()]
    unbiased = all(rows[k]["max_z"] < 4 for k in rows if k.startswith("REINFORCE"))
    biased = [k for k in rows if k.startswith("straight") and rows[k]["max_z"] > 4]
    near = {name: all(v < best + 0.05 for v in ends) for name, ends in finals.items()}
    close = [name for name, ok in near.items() if ok]
    far = [name for name, ok in near.items() if not ok]
    learned = "Trained one sample per step, " + "; ".join(
        f"{words(names)} {verb} within 0.05 of the best loss in every seed"
        for names, verb in ((close, "came"), (far, "did not come")) if names) + "."
    ratio = rows["REINFORCE, no baseline"]["variance"] / rows["REINFORCE, baseline b = E"]["variance"]
    page = f"""# Training hard attention needs a gradient estimator

Measured by `{command('hard_attention', argv)}` ({machine()}).

Soft attention mixes the values with weights $a = \\mathrm{{softmax}}(s)$; hard attention
uses one value. Choosing it by argmax gives a function of the scores that is constant
between ties, so its derivative is zero wherever it exists: backpropagation has nothing to
follow, and a model can only have hard attention swapped in after training (as on
[the RNN against the Transformer](rnn_vs_transformer.md)). To *train* with it, sample the
choice $j \\sim a$ instead, and descend the expected loss.

## The estimator, derived

For one query with scores $s \\in \\mathbb{{R}}^S$, let $L_j$ be the loss when key $j$ is chosen.
The expected loss and its exact gradient are

$$
E(s) = \\sum_j a_j L_j, \\qquad
\\frac{{\\partial a_j}}{{\\partial s_i}} = a_j([i=j] - a_i)
\\quad\\Rightarrow\\quad
\\frac{{\\partial E}}{{\\partial s_i}} = a_i (L_i - E).
$$

That sum needs every $L_j$: S forward passes. REINFORCE needs one. Since
$\\partial a_j / \\partial s = a_j\\, \\partial \\log a_j / \\partial s$ and $\\partial \\log a_j / \\partial s = e_j - a$,

$$
\\frac{{\\partial E}}{{\\partial s}} = \\sum_j a_j L_j (e_j - a) = \\mathbb{{E}}_{{j \\sim a}}\\big[(L_j - b)(e_j - a)\\big]
$$

for any baseline $b$ that does not depend on $j$, because $\\mathbb{{E}}_{{j\\sim a}}[e_j - a] = 0$. So
$g = (L_j - b)(e_j - a)$ for one sampled $j$ is an unbiased estimate of the gradient; the
baseline changes only its variance. The straight-through Gumbel-softmax estimator instead
takes the hard choice $j = \\arg\\max_k (s_k + G_k)$ (with Gumbel noise $G$, an exact sample of
$a$) in the forward pass, and in the backward pass pretends the choice was the relaxed weights
$w = \\mathrm{{softmax}}((s + G)/\\tau)$: lower variance, but its mean is not $\\partial E / \\partial s$.

## The check, on a case small enough to enumerate

One query, S = {len(s)} keys, values in $\\mathbb{{R}}^{{{V.shape[1]}}}$, target y, $L_j = \\tfrac12 |V_j - y|^2$ (all drawn
from seed 0): losses per choice {", ".join(f"{v:.3f}" for v in L)}, weights a =
{", ".join(f"{v:.3f}" for v in softmax(s))}, expected loss E = {expected_loss(s, V, y):.4f}. Each estimator is averaged over
{args.samples:,} samples. "max z" is the largest distance between the mean and the exact gradient,
in standard errors of the mean (below about 4 is what an unbiased estimator gives);
"variance" is the summed variance of one sample.

{markdown_table(["gradient", *[f"s_{i + 1}" for i in range(len(s))], "max z", "variance"], check_rows)}

{"Both REINFORCE means agree with the exact gradient within 4 standard errors. " if unbiased else "A REINFORCE mean is more than 4 standard errors from the exact gradient. "}The baseline b = E cuts the variance of one sample by {ratio:.1f}x. {("The straight-through Gumbel means are off by more than 4 standard errors at tau = " + ", ".join(k.split("= ")[1] for k in biased) + ": a biased estimator.") if biased else ""}

![training curves and estimators](hard_attention.png)

## Training the scores with each gradient

Gradient descent on the scores (step 0.5, {args.steps} steps, one sample per step for the sampled
estimators), from the scores above. The best achievable expected loss is the smallest $L_j$,
{best:.3f} (all weight on the best key). Expected loss at the end, for seeds {", ".join(map(str, seeds))} of the sampling:

{markdown_table(["gradient", "final E(s) per seed"], train_rows)}

## What this shows

{"The REINFORCE estimator's mean is the exact gradient of the expected loss, checked here against an enumeration of every choice" if unbiased else "The REINFORCE means did not match the exact gradient within 4 standard errors: look at the table"}; the baseline keeps the mean and cuts the spread {ratio:.1f}x. {learned}

## What it does not show

It does not train a sequence model with hard attention: doing that for the GRU decoder on the
reverse task means sampling an attended position at every output step and using the whole
sequence's loss as $L_j$, where the variance is far larger than on this one-step toy.
"""
    raw = {"scores": s.tolist(), "values": V.tolist(), "target": y.tolist(), "losses": L.tolist(),
           "exact": exact.tolist(), "estimators": rows, "training": finals, "samples": args.samples}
    print("wrote", write_outputs(args.out, "hard_attention", page, raw))


if __name__ == "__main__":
    main()
