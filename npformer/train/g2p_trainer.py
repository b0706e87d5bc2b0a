"""Training on the g2p task: the loop of loop.py with the lexicon's batches, dev WER/PER at each
evaluation, early stopping on dev WER, and the test set scored at the end.  docs: g2p.md

    batches       G2PData.batch(step): length-bucketed, a function of (seed, step) only
    evaluation    greedy decoding of every dev word -> dev WER and PER; exact_match = 1 - WER
    best.npz      the parameters of the lowest dev WER so far, written when it improves
    early stop    after cfg.patience evaluations without a lower dev WER
    at the end    best.npz's parameters decode the test words greedily and with beam search
                  (beam size TEST_BEAM; the Transformer only), into DIR/test.json
"""

import json
import os

from npformer.backend import to_numpy
from npformer.errors import ConfigError
from npformer.model.checkpoint import load_into, read
from npformer.train.g2p import G2PData, Vocab, score_words
from npformer.train.loop import Trainer

BEST = "best.npz"
TEST = "test.json"
TEST_BEAM = 5


class G2PTrainer(Trainer):
    """A run of the g2p task; the toy tasks' Trainer with the task's hooks filled in."""

    def make_task(self):
        return G2PData.load(self.cfg.data, self.cfg.batch_size, self.cfg.seed)

    def heldout_set(self):
        return self.task.dev

    def next_batch(self):
        return self.task.batch(self.step + 1)

    def state_meta(self):
        """The toy tasks' meta plus the vocabularies, so `npformer pronounce` needs no data."""
        return {**super().state_meta(), "g2p": self.task.vocab.to_dict()}

    # ------------------------------------------------------------------ evaluation

    def score_heldout(self):
        """Dev WER and PER of greedy decoding, with the early-stopping bookkeeping; writes
        best.npz when the dev WER is the lowest so far."""
        ev = score_words(self.model, self.task.lexicon, self.task.vocab, self.heldout)
        last = self.last_eval or {}
        best = last.get("best_dev_wer")
        improved = best is None or ev["wer"] < best
        if improved:
            self.best_params = self.params_now()
            if self.out_dir is not None:
                self.model.save(self.path(BEST), meta=self.state_meta())
                if self.replacing and os.path.exists(self.path(TEST)):   # --force: the earlier run's test scores go now
                    os.remove(self.path(TEST))
        return {"exact_match": 1.0 - ev["wer"], "dev_wer": ev["wer"], "dev_per": ev["per"],
                "best_dev_wer": ev["wer"] if improved else best,
                "best_step": self.step if improved else last["best_step"],
                "evals_since_best": 0 if improved else last["evals_since_best"] + 1,
                "produced": ev["outputs"]}

    def finished(self, record):
        patience = self.cfg.patience
        return record["exact_match"] >= self.cfg.target or (
            patience is not None and record["evals_since_best"] >= patience)

    def eval_line(self, rec):
        loss = "" if rec["train_loss"] is None else f"  loss {rec['train_loss']:.4f}"
        return (f"step {rec['step']:6d}{loss}  dev WER {100 * rec['dev_wer']:.2f}%  PER {100 * rec['dev_per']:.2f}%"
                f"  (best {100 * rec['best_dev_wer']:.2f}% at step {rec['best_step']})")

    def samples(self, n=3):
        """Lines `word -> expected | produced` for the first n dev words."""
        lines = []
        for word, out in zip(self.heldout[:n], self.last_produced[:n]):
            refs = self.task.lexicon[word]
            mark = "ok" if tuple(out) in refs else "WRONG"
            lines.append(f"{word}  ->  expected {' / '.join(' '.join(r) for r in refs)}  |  "
                         f"produced {' '.join(out)}  {mark}")
        return lines

    def restored(self, out_dir):
        path = os.path.join(out_dir, BEST)
        if os.path.exists(path):
            self.best_params = read(path)[1]

    # ------------------------------------------------------------------ the end

    def run(self, progress=True, on_step=None, write=print):
        """Train as Trainer.run does, then score the test words with the best dev parameters
        (self.test, also written to DIR/test.json)."""
        result = super().run(progress, on_step, write)
        self.test = self.score_test()
        if self.out_dir is not None:
            with open(self.path(TEST), "w") as f:
                json.dump(self.test, f, indent=1)
        return result

    def score_test(self):
        """{"step": the best step, "greedy": {wer, per, ...}, "beam": {...} or None (the RNN)}."""
        last = self.params_now()
        load_into(self.model, self.best_params, "the best dev parameters")
        try:
            out = {"step": self.last_eval["best_step"], "words": len(self.task.test), "beam_size": TEST_BEAM}
            for name, beam in (("greedy", 1), ("beam", TEST_BEAM)):
                if beam > 1 and self.cfg.model != "transformer":
                    out[name] = None                             # beam search is written for the Transformer only
                    continue
                ev = score_words(self.model, self.task.lexicon, self.task.vocab, self.task.test, beam)
                out[name] = {k: v for k, v in ev.items() if k != "outputs"}
        finally:
            load_into(self.model, last, "the last parameters")   # the run's own state, as saved
        return out

    def params_now(self):
        """A host copy of the parameters."""
        return {k: to_numpy(v).copy() for k, v in self.params.items()}


def load_vocab(path):
    """The letter and phoneme vocabularies saved with a g2p checkpoint at `path`."""
    header = read(path)[0]
    saved = header.get("meta", {}).get("g2p")
    if saved is None:
        raise ConfigError(f"{path} was not trained on the g2p task (`npformer train --task g2p`): it has "
                          "no letter and phoneme vocabularies.")
    return Vocab(saved["letters"], saved["phonemes"])
