"""Every plot renders on a tiny model into a non-empty PNG, and bad input is one clear line."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import npformer as nf  # noqa: E402
from npformer import plots  # noqa: E402
from npformer.errors import InputError  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


ROOT = pathlib.Path(__file__).resolve().parents[1]


def is_png(path):
    path = pathlib.Path(path)
    return path.read_bytes()[:8] == PNG and path.stat().st_size > 1000


@pytest.fixture(scope="module")
def tiny():
    cfg = nf.TransformerConfig(src_vocab=9, tgt_vocab=9, d_model=8, n_heads=2, d_ff=16, n_layers=2, dropout=0.0)
    return nf.Transformer(cfg, seed=0)


def test_attention_maps_have_every_layer_and_head(tiny):
    maps = plots.attention_maps(tiny, [3, 4, 5, 6])
    S, T = 4, len(maps["tgt_in"])
    assert maps["encoder"].shape == (2, 2, S, S)
    assert maps["decoder"].shape == (2, 2, T, T)
    assert maps["cross"].shape == (2, 2, T, S)
    assert np.allclose(maps["cross"].sum(-1), 1.0)               # each query's weights are a distribution
    assert np.all(np.triu(maps["decoder"], 1) == 0)               # decoder self-attention is causal


def test_each_plot_writes_a_png(tiny, tmp_path):
    paths = plots.plot_attention(tiny, [3, 4, 5], tmp_path)
    paths.append(plots.plot_positional(tmp_path / "pe.png", 20, 16))
    paths.append(plots.plot_masks(tmp_path / "masks.png"))
    paths.append(plots.plot_schedule(tmp_path / "lr.png", [1, 2, 3], [0.1, 0.2, 0.3]))
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps({"step": s, "train_loss": 2.0 / s, "exact_match": s / 4,
                                             "token_accuracy": s / 4}) for s in (1, 2, 3, 4)))
    paths.append(plots.plot_metrics(tmp_path / "curves.png", metrics))
    assert len(paths) == 7
    for p in paths:
        assert is_png(p), p


def test_plot_input_errors(tiny, tmp_path):
    with pytest.raises(InputError, match="one non-empty sequence"):
        plots.attention_maps(tiny, [])
    with pytest.raises(InputError, match="no metrics file"):
        plots.read_metrics(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match="line 1 is not JSON"):
        plots.read_metrics(bad)


def test_cli_plot_commands(tiny, tmp_path):
    ckpt = tmp_path / "m.npz"
    tiny.save(ckpt)

    def run(*args):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "npformer", "plot", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env)

    ok = run("attention", str(ckpt), "3 4 5", "--out", str(tmp_path / "att"))
    assert ok.returncode == 0, ok.stderr
    assert is_png(tmp_path / "att" / "attention_cross.png")
    for kind in ("positional", "masks", "lr"):                   # --out names a folder for every kind
        r = run(kind, "--out", str(tmp_path / "pics"))
        assert r.returncode == 0 and is_png(tmp_path / "pics" / f"{kind}.png"), r.stderr
        assert r.stdout == f"wrote {tmp_path / 'pics' / kind}.png\n"
    bad = run("attention", str(ckpt), "3 99")
    assert bad.returncode == 2 and "outside the vocabulary" in bad.stderr and "Traceback" not in bad.stderr
    missing = run("attention", str(tmp_path / "no.npz"), "3")
    assert missing.returncode == 2 and "no checkpoint at" in missing.stderr


def _heatmaps(fig):
    """(image axes, colour-bar axes) of a figure; matplotlib marks a colour bar's axes with `_colorbar`."""
    bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    images = [ax for ax in fig.axes if ax.images and ax not in bars]
    return images, bars


def test_every_heatmap_has_a_colour_bar_and_named_axes(tiny):
    plt = plots._pyplot()
    maps = plots.attention_maps(tiny, [3, 4, 5])
    for kind in ("encoder", "decoder", "cross"):
        fig = plots.draw_attention(plt, maps, kind)
        images, bars = _heatmaps(fig)
        assert len(images) == 4 and len(bars) == 1, (kind, len(images), len(bars))
        assert {ax.get_xlabel() for ax in images} - {""} and {ax.get_ylabel() for ax in images} - {""}
        assert all(ax.get_xticklabels() and ax.get_yticklabels() for ax in images)   # tokens on both axes
        assert "query" in " ".join(ax.get_ylabel() for ax in images)
        assert "key" in " ".join(ax.get_xlabel() for ax in images)
        plt.close(fig)
    assert "anti-diagonal" in plots.ATTENTION_KINDS["cross"][3]
    fig = plots.draw_masks(plt)
    images, bars = _heatmaps(fig)
    assert len(images) == 9 and len(bars) == 1
    assert [t.get_text() for t in bars[0].get_yticklabels()] == ["hidden", "may attend"]
    plt.close(fig)
