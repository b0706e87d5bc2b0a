"""Every kind of bad input or failure the command line meets gets one sentence on stderr and a
non-zero exit (2: bad usage, 1: a failure while running), and leaves the files on disk as they
were. One test per kind; each asserts the message and a snapshot of the files before and after."""

import errno
import json
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from npformer.cli import main
from npformer.model import checkpoint
from npformer.model.checkpoint import read
from npformer.train.loop import TrainConfig, fresh
from helpers import one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--d-model", "16", "--n-heads", "2", "--d-ff", "32", "--n-layers", "1", "--max-len", "4",
        "--batch-size", "8", "--eval-size", "12", "--no-progress"]


def files(folder):
    """{path relative to folder: bytes} of every file under folder."""
    out = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny run: model.npz (step 4) and metrics.jsonl (steps 2 and 4)."""
    out = str(tmp_path_factory.mktemp("run") / "run")
    assert main(["train", *TINY, "--steps", "4", "--eval-every", "2", "--out", out]) == 0
    return out


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty working folder as the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------- OS errors

def test_a_full_disk_during_a_save_is_one_line_and_loses_nothing(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--steps", "2", "--eval-every", "2", "--out", out]) == 0
    capsys.readouterr()
    before = files(out)
    real = checkpoint.np.savez

    def full_disk(f, **arrays):                                  # half the archive reaches the disk, then ENOSPC
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(checkpoint.np, "savez", full_disk)
    line = one_line_error(capsys, ["train", "--resume", "--steps", "4", "--no-progress", "--out", out],
                          "no space left on device", os.path.join(out, "model.npz"), "left as it was", code=1)
    assert line.startswith("npformer train: error: could not write the checkpoint")
    monkeypatch.setattr(checkpoint.np, "savez", real)
    after = files(out)
    assert after.keys() == before.keys(), "a temporary file was left behind"
    assert after["model.npz"] == before["model.npz"]
    assert read(os.path.join(out, "model.npz"))[0]["meta"]["step"] == 2


def test_a_real_full_disk_where_a_small_filesystem_can_be_mounted(tmp_path, capsys):
    """The same on a 2 MB tmpfs filled to 32 kB short of a checkpoint (needs root; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a size-limited tmpfs needs root")
    try:
        out = str(mnt / "run")
        assert main(["train", *TINY, "--steps", "2", "--eval-every", "2", "--out", out]) == 0
        capsys.readouterr()
        before = files(out)
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)   # fill the disk, then free 32 kB:
        try:                                                     # room for a metrics line, not a checkpoint
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            os.close(fd)
        os.truncate(mnt / "filler", os.path.getsize(mnt / "filler") - 32768)
        one_line_error(capsys, ["train", "--resume", "--steps", "4", "--no-progress", "--out", out],
                       "could not write the checkpoint", "(no space left on device); the checkpoint already "
                       "there is left as it was.", code=1)
        after = files(out)
        assert after["model.npz"] == before["model.npz"] and after.keys() == before.keys()
        os.remove(mnt / "filler")
        assert main(["train", "--resume", "--steps", "4", "--no-progress", "--out", out]) == 0
        with open(os.path.join(out, "metrics.jsonl")) as f:
            assert [json.loads(line)["step"] for line in f] == [2, 4]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_while_logging_metrics_keeps_the_checkpoint_and_resume_repairs_the_line(tmp_path, capsys,
                                                                                           monkeypatch):
    import npformer.train.loop as loop
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--steps", "2", "--eval-every", "2", "--out", out]) == 0
    capsys.readouterr()
    before = files(out)

    class HalfWritten:                                           # the disk fills halfway through a line
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:len(text) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_disk_open(path, mode="r", **kwargs):                # appending fills the disk; reading works
        f = open(path, mode, **kwargs)
        return HalfWritten(f) if mode == "a" else f
    monkeypatch.setattr(loop, "open", full_disk_open, raising=False)
    one_line_error(capsys, ["train", "--resume", "--steps", "4", "--no-progress", "--out", out],
                   f"could not write {os.path.join(out, 'metrics.jsonl')} (no space left on device) at step 4; "
                   f"the checkpoint {os.path.join(out, 'model.npz')} from step 2 is left as it was.", code=1)
    monkeypatch.undo()
    after = files(out)
    assert after["model.npz"] == before["model.npz"] and after.keys() == before.keys()
    assert after["metrics.jsonl"].startswith(before["metrics.jsonl"])   # the old lines, then half a line
    assert main(["train", "--resume", "--steps", "4", "--no-progress", "--out", out]) == 0
    assert capsys.readouterr().out.count("unreadable line(s)") == 1
    with open(os.path.join(out, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [2, 4]


def test_out_naming_a_file_is_refused_before_anything_is_written(work, capsys):
    (work / "notes.txt").write_text("mine\n")
    before = files(work)
    one_line_error(capsys, ["train", *TINY, "--out", "notes.txt"], "notes.txt is a file, not a run folder")
    one_line_error(capsys, ["train", *TINY, "--resume", "--out", "notes.txt"], "is a file")
    one_line_error(capsys, ["train", *TINY, "--out", "notes.txt/run"])
    if os.path.exists("/dev/null"):
        one_line_error(capsys, ["train", *TINY, "--out", "/dev/null"], "/dev/null is a file")
    assert files(work) == before


def test_a_save_under_a_file_is_one_sentence(work):
    from npformer.errors import StorageError
    from npformer.model import Transformer
    (work / "file").write_text("x")
    model = Transformer({"src_vocab": 5, "tgt_vocab": 5, "d_model": 8, "n_heads": 2, "d_ff": 8, "n_layers": 1})
    with pytest.raises(StorageError, match=r"^cannot write the checkpoint file/x\.npz: a part of its folder is a file\.$"):
        model.save("file/x.npz")
    assert files(work) == {"file": b"x"}


def test_a_closed_pipe_ends_quietly(run_dir):
    """`npformer ... | head`: the reader goes away; no traceback, the status a shell reports for it."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    p = subprocess.Popen([sys.executable, "-m", "npformer", "decode", os.path.join(run_dir, "model.npz"),
                          *["3 4 5"] * 2000], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()                                             # the reader is gone before the first line
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == "", err


def test_another_os_error_is_one_sentence(capsys, monkeypatch):
    import npformer.cli.gradcheck as gradcheck

    def denied(args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/root/x.npz")
    monkeypatch.setattr(gradcheck, "run", denied)
    one_line_error(capsys, ["gradcheck"], "npformer gradcheck: error: permission denied: /root/x.npz.", code=1)


# ----------------------------------------------------------------------------- divergence

def test_a_finite_divergence_stops_and_saves_nothing(work, capsys):
    line = one_line_error(capsys, ["train", *TINY, "--lr", "1e3", "--steps", "400", "--eval-every", "50"],
                          "training diverged at step", "10 times its best", "no checkpoint had been written yet", code=1)
    assert files(work) == {}, line                               # not even the run folder


def test_a_rise_below_a_tenth_of_a_uniform_guess_is_not_divergence(tmp_path):
    """Ten times a best near zero is not a breakdown; the loss must also pass ln V / factor."""
    from npformer.train.loop import TrainingDiverged
    trainer = fresh(TrainConfig(d_model=16, n_heads=2, d_ff=32, n_layers=1, max_len=4, batch_size=8, steps=6),
                    str(tmp_path / "run"))
    floor = math.log(trainer.model.cfg.tgt_vocab) / trainer.cfg.diverge_factor
    for step in range(1, 1001):                                  # settles at 0.004, far below the floor
        trainer._watch_loss(0.004, step)
    rise = 0.9 * floor                                           # 20x the best, still under the floor
    for step in range(1001, 2001):
        trainer._watch_loss(rise, step)
    assert trainer.guard["above"] == 0
    with pytest.raises(TrainingDiverged, match="training diverged at step"):
        for step in range(2001, 3001):                           # past both bars: stops within ~100 steps
            trainer._watch_loss(1.1 * floor, step)
    assert step < 2001 + 100 + 200


def test_an_evaluation_that_falls_is_not_saved(tmp_path, monkeypatch):
    import npformer.train.loop as loop
    from npformer.train.loop import TrainingDiverged
    out = str(tmp_path / "run")
    trainer = fresh(TrainConfig(d_model=16, n_heads=2, d_ff=32, n_layers=1, max_len=4, batch_size=8, eval_size=12,
                                steps=6, eval_every=2), out)
    real = loop.evaluate
    scores = iter([0.9, 0.3])                                    # step 2 scores 0.9, step 4 falls to 0.3

    def scripted(*args):
        return {**real(*args), "exact_match": next(scores)}
    monkeypatch.setattr(loop, "evaluate", scripted)
    kept = {}
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 4: held-out exact match fell from "
                                               r"0\.900 \(step 2\) to 0\.300, more than --diverge-drop 0\.5; "
                                               r"the checkpoint .*model\.npz from step 2 is left as it was"):
        trainer.run(progress=False, write=lambda s: None, on_step=lambda t: kept.update(files(out)))
    assert files(out) == kept and read(os.path.join(out, "model.npz"))[0]["meta"]["step"] == 2


@pytest.mark.parametrize("flag,value,message", [
    ("--clip", "nan", "--clip must be a finite number, got nan."),
    ("--target", "nan", "--target must be a finite number, got nan."),
    ("--lr", "nan", "--lr must be a finite number, got nan."),
    ("--lr", "-1", "--lr must be a positive number, got -1.0."),
    ("--diverge-factor", "0.5", "--diverge-factor must be above 1"),
])
def test_numbers_that_cannot_train_are_refused_before_step_one(work, capsys, flag, value, message):
    one_line_error(capsys, ["train", *TINY, flag, value], message)
    assert files(work) == {}


# ----------------------------------------------------------------------------- reading a checkpoint

def _rewrite(src, dst, change=None, add=None, compress=None):
    """Copy the checkpoint src to dst with members changed ({name: array}) or added."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(change or {})
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    for name, (header, data) in (add or {}).items():             # raw members: a header that lies about its data
        with zipfile.ZipFile(dst, "a", compression=compress or zipfile.ZIP_STORED) as zf, \
                zf.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            for chunk in data:
                f.write(chunk)
    return str(dst)


def _header(src, **changes):
    with np.load(src) as z:
        h = json.loads(str(z["header"]))
    h.update(changes)
    return np.array(json.dumps(h))


def npy_header(shape, dtype="<f4"):
    return {"descr": dtype, "fortran_order": False, "shape": shape}


@pytest.mark.parametrize("kind", ["huge shape", "zip bomb", "wrong shape", "NaN weights", "text weights",
                                  "meta as a list", "config missing"])
def test_a_checkpoint_is_checked_before_its_data_is_read(run_dir, tmp_path, capsys, kind):
    good = os.path.join(run_dir, "model.npz")
    bad = tmp_path / "bad.npz"
    name = "param/generator.W"
    W = read(good)[1]["generator.W"]
    if kind == "huge shape":                                     # declares 4 TB, stores 16 bytes
        path = _rewrite(good, bad, add={"extra/huge": (npy_header((10 ** 12,)), [b"\0" * 16])})
        message = "is not a readable npformer checkpoint"
    elif kind == "zip bomb":                                     # 128 MiB of zeros, stored in 130 kB
        chunk = b"\0" * (1 << 20)
        path = _rewrite(good, bad, add={"extra/bomb": (npy_header((2 ** 25,)), [chunk] * 128)},
                        compress=zipfile.ZIP_DEFLATED)
        assert os.path.getsize(path) < 2 << 20
        message = "more than a checkpoint holds"
    elif kind == "wrong shape":
        path = _rewrite(good, bad, change={name: np.zeros((3, 3), np.float32)})
        message = f"{name} declares shape (3, 3), its model's {W.shape}"
    elif kind == "NaN weights":
        path = _rewrite(good, bad, change={name: np.full_like(W, np.nan)})
        message = f"{name} holds NaN or infinite values"
    elif kind == "text weights":
        path = _rewrite(good, bad, change={name: np.full(W.shape, "w")})
        message = f"{name} has dtype <U1, not a floating-point type"
    elif kind == "meta as a list":
        path = _rewrite(good, bad, change={"header": _header(good, meta=[1, 2])})
        message = "has a damaged header: its 'meta' is not a dict"
    else:
        with np.load(good) as z:
            h = json.loads(str(z["header"]))
        del h["config"]
        path = _rewrite(good, bad, change={"header": np.array(json.dumps(h))})
        message = "has a damaged header: it has no 'config'"
    before = files(tmp_path)
    for argv in (["eval", path, "--n", "4"], ["decode", path, "3 4"], ["plot", "attention", path, "3 4",
                                                                       "--out", str(tmp_path / "pics")]):
        one_line_error(capsys, argv, message)
    assert files(tmp_path) == before


def test_a_header_without_meta_still_evaluates_with_a_task(run_dir, tmp_path, capsys):
    good = os.path.join(run_dir, "model.npz")
    with np.load(good) as z:
        h = json.loads(str(z["header"]))
    del h["meta"]
    path = _rewrite(good, tmp_path / "nometa.npz", change={"header": np.array(json.dumps(h))})
    one_line_error(capsys, ["eval", path, "--n", "4"], "does not say which task it was trained on: pass --task")
    assert main(["eval", path, "--n", "4", "--task", "reverse"]) == 0


# ----------------------------------------------------------------------------- resume and its side files

def test_a_torn_last_metrics_line_is_dropped_and_said_once(run_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    os.makedirs(out)
    for name in ("model.npz", "metrics.jsonl"):
        with open(os.path.join(run_dir, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:
        f.write('{"step": 6, "train_lo')                         # what a kill mid-write leaves
    assert main(["train", "--resume", "--steps", "6", "--no-progress", "--out", out]) == 0
    said = capsys.readouterr().out
    assert said.count("note: 1 unreadable line(s) of") == 1 and "metrics.jsonl" in said
    with open(os.path.join(out, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [2, 4, 6]


def test_temporary_files_of_a_killed_save_are_removed_by_the_next(tmp_path):
    from npformer.model import Transformer
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)                                      # a process id that no longer runs
    path = tmp_path / "model.npz"
    stale = tmp_path / f"model.npz.tmp-{dead}"
    stale.write_bytes(b"PK half")
    other = tmp_path / "model.npz.tmp-notes"                     # not a process id: not ours to delete
    other.write_bytes(b"x")
    Transformer({"src_vocab": 5, "tgt_vocab": 5, "d_model": 8, "n_heads": 2, "d_ff": 8, "n_layers": 1}).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "model.npz.tmp-notes"]


def test_force_interrupted_before_its_first_save_leaves_the_old_run(run_dir, tmp_path, capsys, monkeypatch):
    from npformer.train.parallel import DataParallel
    out = str(tmp_path / "run")
    os.makedirs(out)
    for name in ("model.npz", "metrics.jsonl"):
        with open(os.path.join(run_dir, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())
    before = files(out)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(DataParallel, "step", interrupt)
    assert main(["train", *TINY, "--force", "--seed", "3", "--out", out]) == 130
    assert f"the earlier run in {out} is left as it was" in capsys.readouterr().err
    assert files(out) == before


# ----------------------------------------------------------------------------- bench writes only when told

def test_bench_smoke_writes_nothing(work, capsys):
    page = os.path.join(ROOT, "docs", "benchmarks.md")
    with open(page, "rb") as f:
        published = f.read()
    assert main(["bench", "--smoke", "--no-torch", "--no-solve", "--no-memory"]) == 0
    assert "tiny" in capsys.readouterr().out
    one_line_error(capsys, ["bench", "--smoke", "--markdown", "bench.md"], "--smoke measures nothing")
    assert files(work) == {}
    with open(page, "rb") as f:
        assert f.read() == published


# ----------------------------------------------------------------------------- numbers out of range

OUT_OF_RANGE = [
    (["train", "--seed", "-1"], "--seed must be an integer in [0, 4,294,967,295], got -1."),
    (["train", "--symbols", "1000000000"], "--symbols must be an integer in [1, 999,997], got 1000000000."),
    (["train", "--max-len", "600"], "--max-len must be an integer in [1, 511], got 600."),
    (["train", "--batch-size", "100000000"], "--batch-size must be an integer in [1, 16,384]"),
    (["train", "--d-model", "100000"], "--d-model must be an integer in [1, 16,384], got 100000."),
    (["train", "--d-model", "8192", "--n-layers", "8"], "most npformer builds is 250,000,000"),
    (["eval", "model.npz", "--n", "1000000000"], "--n must be an integer in [1, 100,000], got 1000000000."),
    (["eval", "model.npz", "--samples", "-1"], "--samples must be an integer in [0, 1,000], got -1."),
    (["decode", "model.npz", "3", "--max-len", "0"], "--max-len must be an integer in [1, 100,000], got 0."),
    (["gradcheck", "--only", "zzz"], "no check's name contains 'zzz'"),
    (["plot", "positional", "--max-len", "0"], "--max-len must be an integer in [1, 4,096], got 0."),
    (["plot", "positional", "--d-model", "-3"], "--d-model must be an integer in [1, 4,096], got -3."),
    (["plot", "lr", "--steps", "-5"], "--steps must be an integer in [1, 1,000,000], got -5."),
    (["plot", "lr", "--warmup", "0"], "--warmup must be an integer in [1, 1,000,000], got 0."),
    (["plot", "lr", "--lr", "inf"], "--lr must be a finite number, got inf."),
    (["bench", "--seconds", "nan"], "--seconds must be a finite number, got nan."),
]


@pytest.mark.parametrize("argv,message", OUT_OF_RANGE, ids=[" ".join(a) for a, _ in OUT_OF_RANGE])
def test_a_number_out_of_range_is_one_sentence_with_its_bound(work, capsys, argv, message):
    one_line_error(capsys, argv, message)
    assert files(work) == {}


def test_plot_metrics_given_a_checkpoint(run_dir, capsys):
    before = files(run_dir)
    one_line_error(capsys, ["plot", "metrics", os.path.join(run_dir, "model.npz")],
                   "is a checkpoint, not a metrics file")
    assert files(run_dir) == before


def test_plot_out_is_a_folder_for_every_kind_and_the_line_names_the_file(run_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pics = tmp_path / "pics"
    assert main(["plot", "masks", "--out", str(pics)]) == 0
    assert main(["plot", "metrics", run_dir, "--out", str(pics)]) == 0
    wrote = [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert wrote == [str(pics / "masks.png"), str(pics / "curves.png")]
    assert sorted(os.listdir(pics)) == ["curves.png", "masks.png"]
    (tmp_path / "a.png").write_bytes(b"mine")
    one_line_error(capsys, ["plot", "masks", "--out", str(tmp_path / "a.png")], "is a file; it names the folder")
    assert (tmp_path / "a.png").read_bytes() == b"mine"


# ----------------------------------------------------------------------------- the first message is the right one

def test_an_unusable_backend_is_said_before_the_existing_run(run_dir, tmp_path, capsys):
    from npformer.backend import get_backend
    try:
        get_backend("cupy")
        pytest.skip("CuPy runs here")
    except Exception:
        pass
    before = files(run_dir)
    line = one_line_error(capsys, ["train", *TINY, "--backend", "cupy", "--out", run_dir], "backend 'cupy'", code=1)
    assert "already holds a run" not in line
    assert 'pip install -e ".[gpu]"' in line and "npformer[gpu]" not in line   # how a checkout installs it
    assert files(run_dir) == before
    new = str(tmp_path / "new")
    one_line_error(capsys, ["train", *TINY, "--backend", "cupy", "--out", new], "backend 'cupy'", code=1)
    assert not os.path.exists(new), "a failed start left a run folder"
