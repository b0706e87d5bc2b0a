"""The whole model's gradient in float64, the loss included: every combination of post/pre norm,
sinusoidal/learned positions, tied/untied embeddings and label smoothing 0/0.1, on a heavily
padded batch with S != T, checked along one random direction through all parameters at once
and at one entry of every parameter; then with dropout on and its masks frozen.

(The cases of gradcheck_cases.MODEL_CASES, a few entries of every parameter each, run in
test_gradcheck_layers.py with every other case.)"""

import itertools

import pytest

from npformer.gradcheck import assert_all_pass, check_gradients
from npformer.gradcheck_cases import MODEL_SRC, ModelCase, check_all_parameters, model_case_parts
from npformer.layers import Dropout

COMBINATIONS = list(itertools.product(["post", "pre"], ["sinusoidal", "learned"], [False, True], [0.0, 0.1]))


def _frozen(xp, **options):
    model, _, forward, backward = model_case_parts(xp, **options)
    for _, layer in model.named_layers():
        if isinstance(layer, Dropout):
            layer.freeze()
    return model, forward, backward


@pytest.mark.parametrize("norm,positional,tie,smoothing", COMBINATIONS,
                         ids=[f"{n}-{p}-{'tied' if t else 'untied'}-ls{s}" for n, p, t, s in COMBINATIONS])
def test_whole_model_gradient(xp, norm, positional, tie, smoothing):
    model, forward, backward = _frozen(xp, norm=norm, positional=positional, tie=tie, smoothing=smoothing)
    result = check_all_parameters("Transformer", model, forward, backward)
    model.zero_grad()
    results = check_gradients("Transformer", forward, backward, model.parameters(), model.gradients(),
                              max_elements=1)
    assert_all_pass(results + [result])
    assert {r.tensor for r in results} == set(model.parameters())


@pytest.mark.parametrize("norm,dropout,source", [("post", 0.3, MODEL_SRC), ("pre", 0.3, MODEL_SRC[:2] + [[]])],
                         ids=["post", "pre, a source row all padding"])
def test_whole_model_gradient_with_dropout_masks_frozen(xp, norm, dropout, source):
    model, forward, backward = _frozen(xp, norm=norm, dropout=dropout, source=source, tie=True, smoothing=0.1)
    first = float(forward()[0])
    assert float(forward()[0]) == first, "the dropout masks are not frozen"
    assert first != float(model_case_parts(xp, norm=norm, source=source, tie=True, smoothing=0.1)[2]()[0]), \
        "dropout changed nothing"
    assert_all_pass([check_all_parameters("Transformer", model, forward, backward)])


def test_a_wrong_gradient_anywhere_is_caught(xp):
    """One gradient entry off by 1e-4, deep inside: the all-parameter direction sees it."""
    model, forward, backward = _frozen(xp)

    def wrong_backward(dout):
        out = backward(dout)
        model.decoder.layers[1].ffn.grads["b2"][0] += 1e-4
        return out
    result = check_all_parameters("Transformer", model, forward, wrong_backward)
    assert not result.passed and result.error > 1e-5, result.describe()


def test_model_cases_report_the_all_parameter_check(xp):
    case = ModelCase("Transformer", lambda xp: model_case_parts(xp))
    results = case.run(xp, max_elements=1)
    assert results[-1].tensor == "all parameters·v" and results[-1].passed
