"""The walk-through (docs/architecture.md) is real code: its ```pycon blocks run here as one
doctest, so every shape and value it prints is what the model produces."""

import doctest
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"
BLOCK = re.compile(r"^```pycon\n(.*?)^```", re.S | re.M)


def page_doctest(text, name):
    blocks = BLOCK.findall(text)
    return doctest.DocTestParser().get_doctest("\n".join(blocks), {}, name, str(PAGE), 0), len(blocks)


def run(test):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(test, out=report.append)
    return runner.summarize(verbose=False), "".join(report)


def test_the_walk_through_runs_and_prints_what_it_shows():
    test, n_blocks = page_doctest(PAGE.read_text(), "architecture.md")
    assert n_blocks >= 5 and len(test.examples) >= 30, "the walk-through lost its code blocks"
    result, report = run(test)
    assert result.failed == 0, f"docs/architecture.md does not match the code:\n{report}"


def test_a_wrong_shape_in_the_page_is_caught():
    text = "```pycon\n>>> import numpy as np\n>>> np.zeros((2, 3)).shape\n(3, 2)\n```\n"
    test, _ = page_doctest(text, "wrong")
    result, report = run(test)
    assert result.failed == 1 and "(2, 3)" in report
