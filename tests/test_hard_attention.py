"""The hard-attention estimators on the enumerable toy: the exact gradient of the expected loss
against finite differences, REINFORCE unbiased (its mean within a few standard errors of the
exact gradient) with and without a baseline, the baseline lowering the variance, and the
straight-through Gumbel estimator measurably biased."""

import numpy as np

from npformer.experiments import hard_attention as ha


def test_exact_gradient_matches_finite_differences():
    s, V, y = ha.toy(S=5, m=2, seed=3)
    h = 1e-6
    numeric = np.array([(ha.expected_loss(s + h * e, V, y) - ha.expected_loss(s - h * e, V, y)) / (2 * h)
                        for e in np.eye(len(s))])
    np.testing.assert_allclose(ha.exact_gradient(s, V, y), numeric, rtol=1e-6, atol=1e-9)


def test_reinforce_is_unbiased_and_the_baseline_lowers_its_variance():
    s, V, y = ha.toy()
    exact = ha.exact_gradient(s, V, y)
    rng = np.random.default_rng(7)
    n = 100_000
    plain = ha.reinforce(s, V, y, n, rng)
    based = ha.reinforce(s, V, y, n, rng, baseline=ha.expected_loss(s, V, y))
    for g in (plain, based):
        z = np.abs(g.mean(axis=0) - exact) / (g.std(axis=0) / np.sqrt(n))
        assert z.max() < 5, z
    assert based.var(axis=0).sum() < 0.5 * plain.var(axis=0).sum()


def test_straight_through_gumbel_is_biased():
    s, V, y = ha.toy()
    g = ha.straight_through_gumbel(s, V, y, 100_000, np.random.default_rng(8), tau=1.0)
    z = np.abs(g.mean(axis=0) - ha.exact_gradient(s, V, y)) / (g.std(axis=0) / np.sqrt(len(g)))
    assert z.max() > 20


def test_one_sample_reinforce_trains_the_scores():
    s, V, y = ha.toy()
    best = ha.choice_losses(V, y).min()
    curve = ha.train(s, V, y, "reinforce+baseline", 300, 0.5, np.random.default_rng(0))
    assert curve[-1] < best + 0.05 < ha.expected_loss(s, V, y)
