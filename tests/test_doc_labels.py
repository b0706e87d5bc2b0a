"""Equation labels tie the code to its derivations, and this file checks the tie both ways.

A numbered result in docs/ is a display equation tagged `\\tag{LN-7}`; the line of code that
computes it ends with the comment `(LN-7)`. Checked here:

- every label in the code is derived on some page, and every derived result is computed by
  some line of code;
- labels are unique, numbered 1..n per prefix without gaps, and each prefix lives on one page;
- every label the prose mentions exists;
- on a derivation page that is a notebook, every label also appears in a code cell (the plain
  version of the layer, one line per numbered result); pages not yet notebooks are skipped;
- every line of a backward pass that computes something carries a label;
- every docs page a module names (`docs: derivations/x.md`) exists.
"""

import ast
import pathlib
import re
from collections import defaultdict

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "npformer"
DOCS = ROOT / "docs"

LABEL = r"[A-Z]{2,6}-\d+"
CODE_LABEL = re.compile(rf"\(({LABEL}(?:,\s*{LABEL})*)\)")      # (LN-7) or (LN-5, LN-6)
DOC_TAG = re.compile(rf"\\tag\{{({LABEL})\}}")                  # \tag{LN-7}
MENTION = re.compile(rf"\b({LABEL})\b")
DOCS_REF = re.compile(r"docs:\s*((?:[\w./-]+\.md)(?:,\s*[\w./-]+\.md)*)")
FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
CODE_CELL = re.compile(r"^(`{3,})\{code-cell\}[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)

# Work that lands in pieces: while a file named here does not exist, labels with its prefixes
# are exempt from the two-way check (the code or the page that would match them is still being
# written), and references to it are not reported. Once the file exists the check is strict.
PENDING = {
    "npformer/loss.py": ("CE",),
    "npformer/model/transformer.py": ("TF",),
    "npformer/train/optim.py": ("ADAM", "LR"),
    "docs/derivations/gru.md": ("GRU",),
    "docs/derivations/rnn_attention.md": ("RNNA",),
    "docs/derivations/vision.md": ("IMG",),
    "docs/derivations/scores.md": ("SCORE",),
    "docs/training.md": (),
}


def _prefix(label):
    return label.rsplit("-", 1)[0]


def _number(label):
    return int(label.rsplit("-", 1)[1])


def exempt_prefixes(root=ROOT):
    return {p for path, prefixes in PENDING.items() if not (root / path).exists() for p in prefixes}


def code_labels(pkg=PKG):
    """label -> ["file:line", ...] for every (LABEL) in the package's source."""
    found = defaultdict(list)
    for path in sorted(pkg.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for group in CODE_LABEL.findall(line):
                for label in re.split(r",\s*", group):
                    found[label].append(f"{path.relative_to(pkg.parent)}:{n}")
    return dict(found)


def doc_pages(docs=DOCS):
    return sorted(p for p in docs.rglob("*.md") if "_build" not in p.parts)


def doc_tags(docs=DOCS):
    """label -> ["page:line", ...] for every \\tag{LABEL} in the docs."""
    found = defaultdict(list)
    for path in doc_pages(docs):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for label in DOC_TAG.findall(line):
                found[label].append(f"{path.relative_to(docs)}:{n}")
    return dict(found)


def unmatched(have, want, exempt):
    """Labels in `have` that `want` lacks, except those with an exempt prefix."""
    return sorted((k for k in have if k not in want and _prefix(k) not in exempt), key=lambda k: (_prefix(k), _number(k)))


def tag_problems(tags):
    """Duplicates, gaps in 1..n, and prefixes spread over more than one page."""
    problems = []
    by_prefix = defaultdict(list)
    for label, places in tags.items():
        by_prefix[_prefix(label)].append(label)
        if len(places) > 1:
            problems.append(f"{label} is tagged {len(places)} times: {', '.join(places)}")
    for prefix, labels in sorted(by_prefix.items()):
        numbers = sorted(_number(label) for label in labels)
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"{prefix} labels are not numbered 1..n: {numbers}")
        pages = sorted({place.split(":")[0] for label in labels for place in tags[label]})
        if len(pages) > 1:
            problems.append(f"{prefix} labels are spread over {pages}")
    return problems


def _describe(labels, where):
    return "\n".join(f"  {label}  ({', '.join(where.get(label, []))})" for label in labels)


# ----------------------------------------------------------------------------- both ways

def test_every_label_in_the_code_is_derived_in_the_docs():
    code, tags = code_labels(), doc_tags()
    assert code, "found no equation labels in the code at all"
    missing = unmatched(code, tags, exempt_prefixes())
    assert not missing, ("labels in the code with no \\tag{...} in docs/:\n" + _describe(missing, code))


def test_every_derived_result_is_computed_by_some_line_of_code():
    code, tags = code_labels(), doc_tags()
    assert tags, "found no \\tag{...} in docs/ at all"
    unused = unmatched(tags, code, exempt_prefixes())
    assert not unused, ("numbered results in docs/ that no line of code carries:\n" + _describe(unused, tags))


def test_tags_are_unique_numbered_from_one_and_each_prefix_on_one_page():
    problems = tag_problems(doc_tags())
    assert not problems, "\n".join(problems)


def test_labels_mentioned_in_the_prose_exist():
    tags = doc_tags()
    known = {_prefix(label) for label in tags} | {_prefix(label) for label in code_labels()}
    exempt = exempt_prefixes()
    bad = []
    for path in doc_pages():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for label in MENTION.findall(DOC_TAG.sub("", line)):
                if _prefix(label) in known and label not in tags and _prefix(label) not in exempt:
                    bad.append(f"{path.relative_to(DOCS)}:{n}: {label}")
    assert not bad, "the docs mention labels that no page defines:\n" + "\n".join(bad)


def is_notebook(text):
    """A MyST notebook page: its front matter says `file_format: mystnb`."""
    front = FRONT_MATTER.match(text)
    return bool(front and re.search(r"^file_format:\s*mystnb\s*$", front.group(1), re.M))


def labels_missing_from_code_cells(text):
    """The page's \\tag labels that no code cell of the page carries as a (LABEL) comment."""
    in_cells = {label for _, cell in CODE_CELL.findall(text) for label in code_labels_in(cell)}
    return sorted({label for label in DOC_TAG.findall(text) if label not in in_cells},
                  key=lambda k: (_prefix(k), _number(k)))


def test_every_label_of_a_notebook_page_is_in_its_plain_version():
    pages = sorted((DOCS / "derivations").glob("*.md"))
    notebooks = [page for page in pages if is_notebook(page.read_text())]
    if not notebooks:
        pytest.skip("no derivation page is a notebook yet")
    bad = [f"{page.relative_to(DOCS)}: {', '.join(missing)}" for page in notebooks
           if (missing := labels_missing_from_code_cells(page.read_text()))]
    assert not bad, ("labels of a notebook page that no code cell computes (the plain version needs "
                     "one line per numbered result, ending with its label, e.g. '# (LN-7)'):\n" + "\n".join(bad))


# ----------------------------------------------------------------------------- code side

# The model's backward passes: the layers, the stacks and the model, and the loss.
BACKWARD_SCOPE = ("layers", "model", "loss.py")


def _is_backward(name):
    return name == "backward" or name.endswith("_backward")


def _is_gradient(target):
    """A name like dx or dW, a subscript of one, or an entry of a layer's grads."""
    if isinstance(target, ast.Name):
        return target.id.startswith("d")
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_is_gradient(t) for t in target.elts)
    if isinstance(target, (ast.Subscript, ast.Attribute)):
        return any(isinstance(n, ast.Attribute) and n.attr == "grads" for n in ast.walk(target)) \
            or _is_gradient(target.value)
    return False


def _computes(node):
    """A statement that computes part of a gradient: an in-place accumulation, an assignment to
    a gradient of an expression with arithmetic, a scatter-add (xp.add.at), or a returned or
    passed-on expression with arithmetic. Index arithmetic (dout.ndim - 1) and calls that only
    hand a gradient on to another layer's backward are not counted."""
    if isinstance(node, ast.AugAssign):
        return True
    if isinstance(node, ast.Assign) and not any(_is_gradient(t) for t in node.targets):
        return False
    if not isinstance(node, (ast.Assign, ast.Return, ast.Expr)) or node.value is None:
        return False
    for sub in ast.walk(node.value):
        if isinstance(sub, ast.BinOp) and not _is_bookkeeping(sub):
            return True
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "at":
            return True
    return False


def _is_bookkeeping(binop):
    """Arithmetic on shapes and lists, not on tensors: `dout.ndim - 1`, `[None] * n`."""
    if isinstance(binop.left, ast.List):
        return True
    sides = (binop.left, binop.right)
    return any(isinstance(s, ast.Constant) and isinstance(s.value, int) for s in sides) and \
        all(isinstance(s, (ast.Constant, ast.Attribute, ast.Name)) for s in sides) and \
        any(isinstance(s, ast.Attribute) and s.attr in ("ndim", "size") for s in sides)


def unlabeled_backward_lines(source, name="<source>"):
    """'name:line: text' for each statement of a backward function that computes part of a
    gradient and whose lines carry no label."""
    lines = source.splitlines()
    out = []
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_backward(fn.name)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.stmt) and _computes(node):
                span = lines[node.lineno - 1:node.end_lineno]
                if not any(CODE_LABEL.search(line) for line in span):
                    out.append(f"{name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return out


def code_labels_in(text):
    return [label for group in CODE_LABEL.findall(text) for label in re.split(r",\s*", group)]


def test_every_computing_line_of_a_backward_pass_carries_a_label():
    exempt = exempt_prefixes()
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path.relative_to(PKG).parts[0] not in BACKWARD_SCOPE:
            continue
        text = path.read_text()
        prefixes = {_prefix(label) for label in code_labels_in(text)}
        if prefixes and prefixes <= exempt:
            continue                                             # its derivation page is still being written
        bad += unlabeled_backward_lines(text, str(path.relative_to(ROOT)))
    assert not bad, ("lines of a backward pass that compute part of a gradient but name no "
                     "equation (end them with its label, e.g. '# (LN-7)'):\n" + "\n".join(bad))


def test_docs_pages_named_in_the_code_exist():
    pending = {path for path in PENDING if not (ROOT / path).exists()}
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        for group in DOCS_REF.findall(path.read_text()):
            for page in re.split(r",\s*", group):
                target = f"docs/{page}"
                if not (ROOT / target).exists() and target not in pending:
                    bad.append(f"{path.relative_to(ROOT)} names {target}, which does not exist")
    assert not bad, "\n".join(bad)


# ----------------------------------------------------------------------------- the checks can fail

def test_the_checks_can_fail():
    code = {"LN-1": ["a.py:1"], "LN-2": ["a.py:2"], "CE-1": ["l.py:1"]}
    tags = {"LN-1": ["p.md:1"], "LN-3": ["p.md:3"]}
    assert unmatched(code, tags, set()) == ["CE-1", "LN-2"]
    assert unmatched(code, tags, {"CE"}) == ["LN-2"]
    assert unmatched(tags, code, set()) == ["LN-3"]

    problems = tag_problems({"XY-1": ["a.md:1", "a.md:9"], "XY-3": ["b.md:2"]})
    assert any("tagged 2 times" in p for p in problems)
    assert any("not numbered 1..n" in p for p in problems)
    assert any("spread over" in p for p in problems)

    source = ("def backward(self, dout):\n"
              "    axes = tuple(range(dout.ndim - 1)); ds = [None] * 3\n"
              "    dx = dout * 2                 # (XY-1)\n"
              "    dw = dout.sum(axis=0) + 1\n"
              "    self.xp.add.at(g, ids, dout)\n"
              "    self.grads['b'] += dout.sum(axis=axes)\n"
              "    dh = self.inner.backward(dx)\n"
              "    return dh + dx\n")
    flagged = [int(line.split(":")[1]) for line in unlabeled_backward_lines(source)]
    assert flagged == [4, 5, 6, 8], flagged

    assert code_labels_in("y = 1  # (LN-5, LN-6)  (ATT-2)") == ["LN-5", "LN-6", "ATT-2"]

    page = ("---\nfile_format: mystnb\n---\n\n$$ y = x \\tag{XY-1} $$\n$$ z = y \\tag{XY-2} $$\n"
            "```{code-cell} python\ny = x          # (XY-1)\n```\n\n```python\nz = y  # (XY-2)\n```\n")
    assert is_notebook(page) and not is_notebook(page.replace("mystnb", "myst"))
    assert labels_missing_from_code_cells(page) == ["XY-2"]          # a plain ``` block is not a cell
    assert labels_missing_from_code_cells(page.replace("```python", "```{code-cell} python")) == []
    assert DOCS_REF.findall('"""Thing.  docs: derivations/a.md,\nderivations/b.md"""') == ["derivations/a.md,\nderivations/b.md"]
