"""The GRU: one step against the paper's equations written out in loops, padding carried
through time, and gradient checks over a longer sequence than the table's cases."""

import math

import numpy as np
import pytest

from npformer.gradcheck import assert_all_pass, check_gradients
from npformer.layers.gru import GRU

from helpers import close, rand

F64 = "float64"


def sig(a):
    return 1.0 / (1.0 + math.exp(-a))


def ref_gru(x, h0, W, U, b):
    """x (T,I), h0 (Hd,): Cho et al.'s equations, one number at a time."""
    T, I = x.shape
    Hd = h0.shape[0]
    h, out = list(h0), []
    for t in range(T):
        def pre(gate, j, hv):
            c = gate * Hd + j
            return (sum(x[t, i] * W[i, c] for i in range(I)) + sum(hv[m] * U[m, c] for m in range(Hd)) + b[c])
        z = [sig(pre(0, j, h)) for j in range(Hd)]
        r = [sig(pre(1, j, h)) for j in range(Hd)]
        rh = [r[m] * h[m] for m in range(Hd)]
        n = [math.tanh(pre(2, j, rh)) for j in range(Hd)]
        h = [(1 - z[j]) * n[j] + z[j] * h[j] for j in range(Hd)]
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("T", [1, 5])
def test_forward_against_loops(xp, dev, host, T):
    gru = GRU(3, 4, np.random.default_rng(0), xp, F64)
    gru.params["b"][...] = dev(rand(12, seed=5))                 # non-zero biases, so b is exercised
    x, h0 = rand(2, T, 3, seed=1), rand(2, 4, seed=2)
    out = host(gru.forward(dev(x), dev(h0)))
    P = {k: host(v) for k, v in gru.params.items()}
    for row in range(2):
        close(out[row], ref_gru(x[row], h0[row], P["W"], P["U"], P["b"]))


def test_no_initial_state_means_zeros(xp, dev, host):
    gru = GRU(3, 4, np.random.default_rng(0), xp, F64)
    x = dev(rand(2, 3, 3))
    close(host(gru.forward(x)), host(gru.forward(x, dev(np.zeros((2, 4))))))


def test_padding_carries_the_state_and_its_gradient(xp, dev, host):
    """Row 1 has 2 real steps of 5: its states, final state and every gradient must equal
    those of the same 2 steps run alone."""
    gru = GRU(3, 4, np.random.default_rng(0), xp, F64)
    x, h0, dout = rand(2, 5, 3, seed=1), rand(2, 4, seed=2), rand(2, 5, 4, seed=3)
    keep = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    states = host(gru.forward(dev(x), dev(h0), dev(keep)))
    for t in (2, 3, 4):
        assert np.array_equal(states[1, t], states[1, 1])       # padded steps change nothing
    dout[1, 2:] = 0                                              # the loss ignores padded positions
    gru.zero_grad()
    dx, dh0 = (host(a) for a in gru.backward(dev(dout)))
    grads_padded = {k: host(v).copy() for k, v in gru.grads.items()}
    assert np.all(dx[1, 2:] == 0)

    # the same batch as two separate runs: row 0 whole, row 1 cut to its 2 real steps
    gru.zero_grad()
    for row, T in ((0, 5), (1, 2)):
        alone = host(gru.forward(dev(x[row:row + 1, :T]), dev(h0[row:row + 1])))
        close(alone[0], states[row, :T])
        dxa, dha = (host(a) for a in gru.backward(dev(dout[row:row + 1, :T])))
        close(dxa[0], dx[row, :T])
        close(dha[0], dh0[row])
    for k, g in gru.grads.items():
        close(host(g), grads_padded[k])


def test_a_padded_step_passes_its_gradient_to_the_last_real_state(xp, dev, host):
    """The final state states[:, -1] of a padded row is the state at its last real token,
    so the gradient given to it must arrive at that step."""
    gru = GRU(2, 3, np.random.default_rng(0), xp, F64)
    x = rand(1, 4, 2, seed=1)
    keep = np.array([[1, 1, 0, 0]], bool)
    gru.forward(dev(x), None, dev(keep))
    dout = np.zeros((1, 4, 3))
    dout[0, 3] = 1.0                                             # gradient on the final state only
    dx_pad, _ = gru.backward(dev(dout))
    gru.forward(dev(x[:, :2]))
    dout2 = np.zeros((1, 2, 3))
    dout2[0, 1] = 1.0
    dx_cut, _ = gru.backward(dev(dout2))
    close(host(dx_pad)[0, :2], host(dx_cut)[0])


def test_gradients_through_twelve_steps(xp, dev):
    """Long-range BPTT: random-direction checks plus sampled elements, T = 12, with padding."""
    gru = GRU(3, 4, np.random.default_rng(1), xp, F64)
    x, h0 = dev(rand(3, 12, 3, seed=4)), dev(rand(3, 4, seed=5))
    keep = dev(np.arange(12)[None, :] < np.array([[12], [7], [1]]))
    gru.zero_grad()

    def backward(d):
        dx, dh0 = gru.backward(d)
        return {"x": dx, "h0": dh0}
    results = check_gradients("GRU T=12", lambda: gru.forward(x, h0, keep), backward,
                              {"x": x, "h0": h0, **gru.parameters()}, gru.gradients(),
                              max_elements=25, directions=2)
    assert_all_pass(results)


def test_a_wrong_recurrent_gradient_is_caught(xp, dev):
    gru = GRU(2, 3, np.random.default_rng(0), xp, F64)
    x = dev(rand(2, 3, 2, seed=1))
    gru.zero_grad()

    def wrong(d):
        dx, _ = gru.backward(d)
        gru.grads["U"][0, 0] *= 1.001                            # one element slightly off
        return {"x": dx}
    results = check_gradients("GRU", lambda: gru.forward(x), wrong, {"x": x, **gru.parameters()}, gru.gradients())
    assert not all(r.passed for r in results)
