"""The hand-written NumPy cells, for every row of rnnlab.cells: gradients by central differences (the fused passes
and the plain sequence pass, with and without a padding mask), a naive reference forward, chunking, dtypes, the
fused passes equal to the plain one, a padded batch equal to its sequences one by one, and PyTorch's torch.nn layer
of the row as an independent oracle. (The step pair alone: tests/test_numpy_step.py.)"""

import numpy as np
import pytest

from helpers import assert_central_differences, cell_input, cell_params, cell_state, numpy_cell
from rnnlab import cells
from rnnlab.engines.numpy.layers import sigmoid
from rnnlab.engines.numpy.sequence import (input_projection, input_projection_backward, sequence_backward,
                                           sequence_forward)

CELLS = {name: numpy_cell(name) for name in cells.NAMES}
KEYS = {name: cells.get(name).params for name in cells.NAMES}   # each row's layer parameters


def make_params(cell, D, H, rng, dtype=np.float64, scale=0.6):
    return cell_params(cell, D, H, rng, dtype, scale)


def make_state(cell, N, H, rng, dtype=np.float64):
    return cell_state(cell, N, H, rng, dtype)


def make_input(ids, N, T, D, rng, dtype=np.float64):
    return cell_input(ids, (N, T), D, rng, dtype)


# ---- 1. gradient check of a two-layer stack ----------------------------------------------------------------------

@pytest.mark.parametrize("ids", [False, True], ids=["floats", "ids"])
@pytest.mark.parametrize("name", CELLS)
def test_gradients_match_central_differences(name, ids):
    cell, rng = CELLS[name], np.random.default_rng(1)
    N, T, D, H = 2, 4, 3, 3
    x = make_input(ids, N, T, D, rng)
    p1, p2 = make_params(cell, D, H, rng), make_params(cell, H, H, rng)
    s1, s2 = make_state(cell, N, H, rng), make_state(cell, N, H, rng)
    G_out = rng.standard_normal((N, T, H))
    G_s1, G_s2 = make_state(cell, N, H, rng), make_state(cell, N, H, rng)

    def loss():
        out1, s1T, c1 = cell.forward(x, s1, p1)
        out2, s2T, c2 = cell.forward(out1, s2, p2)
        total = np.sum(out2 * G_out) + sum(np.sum(s * g) for s, g in zip(s1T + s2T, G_s1 + G_s2))
        return total, c1, c2

    _, c1, c2 = loss()
    dout1, ds2, g2 = cell.backward(G_out, G_s2, c2)
    dx, ds1, g1 = cell.backward(dout1, G_s1, c1)
    assert (dx is None) == ids

    checks = [(p1[k], g1[k], f"layer1 {k}") for k in KEYS[name]]
    checks += [(p2[k], g2[k], f"layer2 {k}") for k in KEYS[name]]
    checks += [(s, d, f"layer{j} state0[{i}]") for j, (st, dst) in enumerate([(s1, ds1), (s2, ds2)], 1)
               for i, (s, d) in enumerate(zip(st, dst))]
    if not ids:
        checks.append((x, dx, "x"))
    # eps = 1e-6; per array 2-norm and per entry relative errors <= 1e-6 (see helpers.assert_central_differences)
    worst, worst_elem = assert_central_differences(lambda: loss()[0], checks, name)
    print(f"{name} ids={ids}: worst relative gradient error {worst:.1e} (2-norm), {worst_elem:.1e} (entries)")


# ---- 2. forward equals a deliberately naive per-gate loop ---------------------------------------------------------

def naive_forward(name, x, state0, p, D):
    """One sequence, one step, one gate at a time, with np.dot on vectors and the textbook formulas."""
    def sig(a):
        return 1.0 / (1.0 + np.exp(-a))

    W, U, b, c = p["weight_ih"], p.get("weight_hh"), p["bias_ih"], p.get("bias_hh")   # min*: no U, no c
    H = W.shape[0] // cells.get(name).gates
    N, T = x.shape[:2]
    out = np.zeros((N, T, H))
    final = [np.zeros((N, H)) for _ in state0]
    for n in range(N):
        h = state0[0][n].copy()
        cs = state0[1][n].copy() if name == "lstm" else None
        for t in range(T):
            if x.ndim == 2:
                xv = np.zeros(D)
                xv[x[n, t]] = 1.0
            else:
                xv = x[n, t]

            def ih(k):
                return np.dot(W[k * H:(k + 1) * H], xv) + b[k * H:(k + 1) * H]

            def hh(k):
                return np.dot(U[k * H:(k + 1) * H], h) + c[k * H:(k + 1) * H]

            if name == "rnn":
                h = np.tanh(ih(0) + hh(0))
            elif name == "lstm":
                i, f = sig(ih(0) + hh(0)), sig(ih(1) + hh(1))
                g, o = np.tanh(ih(2) + hh(2)), sig(ih(3) + hh(3))
                cs = f * cs + i * g
                h = o * np.tanh(cs)
            elif name == "gru":
                r, z = sig(ih(0) + hh(0)), sig(ih(1) + hh(1))
                nn_ = np.tanh(ih(2) + r * hh(2))
                h = (1 - z) * nn_ + z * h
            elif name == "mingru":
                z = sig(ih(0))
                h = (1 - z) * h + z * ih(1)
            elif name == "minlstm":
                f, i = sig(ih(0)), sig(ih(1))
                h = f / (f + i) * h + i / (f + i) * ih(2)
            else:
                pytest.skip(f"no textbook loop written here for cell {name!r}")
            out[n, t] = h
        final[0][n] = h
        if name == "lstm":
            final[1][n] = cs
    return out, tuple(final)


@pytest.mark.parametrize("ids", [False, True], ids=["floats", "ids"])
@pytest.mark.parametrize("name", CELLS)
def test_forward_matches_naive_loop(name, ids):
    cell, rng = CELLS[name], np.random.default_rng(2)
    N, T, D, H = 3, 5, 4, 6
    x = make_input(ids, N, T, D, rng)
    p, s0 = make_params(cell, D, H, rng), make_state(cell, N, H, rng)
    out, sT, _ = cell.forward(x, s0, p)
    ref_out, ref_sT = naive_forward(name, x, s0, p, D)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-10)
    for a, r in zip(sT, ref_sT, strict=True):
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-10)


# ---- 3. one pass equals chunks with the state carried -------------------------------------------------------------

def chunked_and_one_pass(cell, x, s0, p, sizes):
    out, sT, _ = cell.forward(x, s0, p)
    state, outs, t0 = s0, [], 0
    for size in sizes:
        o, state, _ = cell.forward(x[:, t0:t0 + size], state, p)
        outs.append(o)
        t0 += size
    assert len(state) == len(sT) == cell.STATE_SIZE
    return (out, np.concatenate(outs, axis=1)), list(zip(sT, state))


@pytest.mark.parametrize("inputs", ["ids", "dyadic floats"])
@pytest.mark.parametrize("name", CELLS)
def test_chunks_with_carried_state_equal_one_pass_exactly(name, inputs):
    """Bitwise: the recurrence does the same operations on the same (N, H) arrays however T is cut.

    The float inputs are dyadic (x in quarters, W_ih and b_ih in 64ths) so that every entry of the input projection
    is exact whatever order the GEMM sums in; see the next test for why that is needed."""
    cell, rng = CELLS[name], np.random.default_rng(3)
    N, T, D, H = 3, 12, 5, 7
    p, s0 = make_params(cell, D, H, rng), make_state(cell, N, H, rng)
    if inputs == "ids":
        x = rng.integers(0, D, (N, T))
    else:
        x = rng.integers(-4, 5, (N, T, D)) / 4.0
        p["weight_ih"] = rng.integers(-32, 33, p["weight_ih"].shape) / 64.0
        p["bias_ih"] = rng.integers(-32, 33, p["bias_ih"].shape) / 64.0
    (out, chunked), states = chunked_and_one_pass(cell, x, s0, p, [4, 4, 4])
    assert np.array_equal(chunked, out)
    assert all(np.array_equal(a, b) for a, b in states)


@pytest.mark.parametrize("name", CELLS)
def test_chunks_with_float_input_agree_to_rounding(name):
    """With arbitrary float inputs chunking is exact only up to the last bit of the input projection.

    The projection is one GEMM over N*T rows, and BLAS need not give a row the same bits in a GEMM over a different
    number of rows: measured with OpenBLAS 0.3.31 (Haswell kernels), a row's result depends on its position in the
    kernel's register tile (sgemm tiles rows in sixes; an odd last row in dgemm goes through a one-row tail
    kernel) and on how the rows are split among threads. So x[:, :4] @ W_ih.T and the first 4 steps of
    x @ W_ih.T may differ by an ulp, and the recurrence carries that along (it does for these sizes there)."""
    cell, rng = CELLS[name], np.random.default_rng(7)
    N, T, D, H = 5, 12, 17, 7
    x = make_input(False, N, T, D, rng)
    p, s0 = make_params(cell, D, H, rng), make_state(cell, N, H, rng)
    (out, chunked), states = chunked_and_one_pass(cell, x, s0, p, [1, 4, 7])
    np.testing.assert_allclose(chunked, out, rtol=0, atol=1e-13)
    for a, b in states:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


# ---- 4. float32 stays float32 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ids", [False, True], ids=["floats", "ids"])
@pytest.mark.parametrize("name", CELLS)
def test_float32_params_give_float32_everything(name, ids):
    cell, rng = CELLS[name], np.random.default_rng(4)
    N, T, D, H = 2, 3, 4, 5
    p = make_params(cell, D, H, rng, np.float32)
    x = make_input(ids, N, T, D, rng, np.float32)
    s0 = make_state(cell, N, H, rng, np.float32)
    out, sT, cache = cell.forward(x, s0, p)
    assert out.dtype == np.float32 and all(s.dtype == np.float32 for s in sT)
    dx, ds0, grads = cell.backward(np.ones_like(out), tuple(np.ones_like(s) for s in sT), cache)
    assert ids or dx.dtype == np.float32
    assert all(d.dtype == np.float32 for d in ds0)
    assert all(grads[k].dtype == np.float32 and grads[k].shape == p[k].shape for k in KEYS[name])
    # float64 upstream grads (or inputs) do not drag float32 params up to float64
    dx, ds0, grads = cell.backward(np.ones(out.shape), None, cache)
    assert all(g.dtype == np.float32 for g in grads.values()) and all(d.dtype == np.float32 for d in ds0)


# ---- 5. PyTorch as the oracle ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ids", [False, True], ids=["floats", "ids"])
@pytest.mark.parametrize("name", CELLS)
def test_matches_pytorch(name, ids):
    torch = pytest.importorskip("torch")
    if not cells.CELLS[name].nn_layer:
        pytest.skip(f"torch.nn has no layer for cell {name!r} (tests/test_min_cells.py checks the torch engine's)")
    cell, rng = CELLS[name], np.random.default_rng(5)
    N, T, D, H = 3, 6, 4, 5
    x = make_input(ids, N, T, D, rng)
    p, s0 = make_params(cell, D, H, rng), make_state(cell, N, H, rng)
    G_out, G_s = rng.standard_normal((N, T, H)), make_state(cell, N, H, rng)

    out, sT, cache = cell.forward(x, s0, p)
    dx, ds0, grads = cell.backward(G_out, G_s, cache)

    module = getattr(torch.nn, cells.CELLS[name].nn_layer)(D, H, num_layers=1, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for k in KEYS[name]:
            getattr(module, f"{k}_l0").copy_(torch.from_numpy(p[k]))
    xt = torch.from_numpy(np.eye(D)[x] if ids else x).requires_grad_(True)
    st = [torch.from_numpy(s[None].copy()).requires_grad_(True) for s in s0]
    tout, tstate = module(xt, tuple(st) if len(st) > 1 else st[0])            # nn.LSTM takes and gives (h, c)
    tstate = tstate if len(st) > 1 else (tstate,)
    loss = (tout * torch.from_numpy(G_out)).sum() + sum((s[0] * torch.from_numpy(g)).sum() for s, g in zip(tstate, G_s))
    loss.backward()

    def close(a, b):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=1e-10)

    close(out, tout)
    for a, b in zip(sT, tstate, strict=True):
        close(a, b[0])
    for k in KEYS[name]:
        close(grads[k], getattr(module, f"{k}_l0").grad)
    for a, b in zip(ds0, st, strict=True):
        close(a, b.grad[0])
    if not ids:
        close(dx, xt.grad)


# ---- the shared input projection -------------------------------------------------------------------------------------

def test_ids_projection_is_the_one_hot_product():
    rng = np.random.default_rng(6)
    N, T, D, GH = 3, 7, 5, 8
    w, b = rng.standard_normal((GH, D)), rng.standard_normal(GH)
    ids = rng.integers(0, D - 1, (N, T))                      # id D-1 never occurs: its column gets zero grad
    ids[0, :3] = 2                                             # repeats must accumulate
    onehot = np.eye(D)[ids]
    np.testing.assert_allclose(input_projection(ids, w, b), input_projection(onehot, w, b), rtol=0, atol=1e-14)
    dxw = rng.standard_normal((N, T, GH))
    dx, dw, db = input_projection_backward(dxw, ids, w)
    _, dw_ref, db_ref = input_projection_backward(dxw, onehot, w)
    assert dx is None and dw.shape == w.shape
    np.testing.assert_allclose(dw, dw_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(db, db_ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        input_projection(np.array([[0, -1]]), w, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_and_keeps_dtype(dtype):
    a = np.array([-1000.0, -80.0, -30.0, -1.0, 0.0, 2.0, 30.0, 1000.0], dtype)
    with np.errstate(all="raise"):                            # no overflow, no invalid values
        s = sigmoid(a)
    exact = np.array([1.0 / (1.0 + np.exp(np.longdouble(-v))) for v in a.tolist()])
    assert s.dtype == dtype
    np.testing.assert_allclose(s, exact.astype(dtype), rtol=0, atol=2 * np.finfo(dtype).eps)


@pytest.mark.parametrize("name", CELLS)
def test_empty_sequence_and_modifying_the_returned_state(name):
    cell, rng = CELLS[name], np.random.default_rng(8)
    N, D, H = 2, 3, 4
    p, s0 = make_params(cell, D, H, rng), make_state(cell, N, H, rng)
    for x in (np.zeros((N, 0), dtype=int), np.zeros((N, 0, D))):
        out, sT, cache = cell.forward(x, s0, p)
        assert out.shape == (N, 0, H) and all(np.array_equal(a, b) for a, b in zip(sT, s0))
        dx, ds0, grads = cell.backward(out, None, cache)
        assert (dx is None or dx.shape == x.shape) and all(not d.any() for d in ds0)
        assert all(grads[k].shape == p[k].shape and not grads[k].any() for k in KEYS[name])
    # Resetting the returned state in place (as between documents) must not change the gradients.
    x = make_input(False, N, 3, D, rng)
    out, sT, cache = cell.forward(x, s0, p)
    _, _, before = cell.backward(np.ones_like(out), None, cache)
    for s in sT:
        s[:] = 0.0
    _, _, after = cell.backward(np.ones_like(out), None, cache)
    assert all(np.array_equal(before[k], after[k]) for k in KEYS[name])


# ---- 6. the fused passes equal the plain sequence pass over the step pair ----------------------------------------

@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("ids", [False, True])
def test_fused_sequence_equals_the_step_functions(name, ids):
    """forward/backward are step_forward/step_backward fused for speed; the readable step functions, run through
    the plain pass in sequence.sequence_forward/backward, must give the same numbers (float64, 1e-12)."""
    cell = CELLS[name]
    rng = np.random.default_rng(5)
    N, T, D, H = 3, 6, 4, 5
    p = make_params(cell, D, H, rng)
    s0 = make_state(cell, N, H, rng)
    x = make_input(ids, N, T, D, rng)
    dout = rng.standard_normal((N, T, H))
    dsT = tuple(rng.standard_normal((N, H)) for _ in s0)
    out_a, sT_a, ca = cell.forward(x, s0, p)
    out_b, sT_b, cb = sequence_forward(cell, x, s0, p)
    np.testing.assert_allclose(out_a, out_b, rtol=1e-12, atol=1e-13)
    for a, b in zip(sT_a, sT_b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    dx_a, ds_a, g_a = cell.backward(dout, dsT, ca)
    dx_b, ds_b, g_b = sequence_backward(cell, dout, dsT, cb)
    assert (dx_a is None) == (dx_b is None) == ids
    if not ids:
        np.testing.assert_allclose(dx_a, dx_b, rtol=1e-12, atol=1e-13)
    for a, b in zip(ds_a, ds_b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    for k in p:
        np.testing.assert_allclose(g_a[k], g_b[k], rtol=1e-12, atol=1e-13)
    # and a mask with every step real changes no bit of the plain pass
    out_m, sT_m, cm = sequence_forward(cell, x, s0, p, np.ones(x.shape[:2], bool))
    assert np.array_equal(out_m, out_b) and all(np.array_equal(a, b) for a, b in zip(sT_m, sT_b, strict=True))
    dx_m, ds_m, g_m = sequence_backward(cell, dout, dsT, cm)
    assert ids or np.array_equal(dx_m, dx_b)
    assert all(np.array_equal(a, b) for a, b in zip(ds_m, ds_b, strict=True))
    assert all(np.array_equal(g_m[k], g_b[k]) for k in KEYS[name])
    # dstateT None means zeros, as for the fused pass
    dx_a, ds_a, g_a = cell.backward(dout, None, ca)
    dx_b, ds_b, g_b = sequence_backward(cell, dout, None, cb)
    for a, b in zip(ds_a, ds_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    for k in KEYS[name]:
        np.testing.assert_allclose(g_a[k], g_b[k], rtol=1e-12, atol=1e-13)


# ---- 7. the plain sequence pass, with and without a padding mask --------------------------------------------------

def ragged_mask(lengths, T):
    """(N, T) bool: row n real on its first lengths[n] steps, padded after."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


@pytest.mark.parametrize("masked", [False, True], ids=["all-real", "padded"])
@pytest.mark.parametrize("ids", [False, True], ids=["floats", "ids"])
@pytest.mark.parametrize("name", CELLS)
def test_sequence_pass_gradients_match_central_differences(name, ids, masked):
    """loss = <out, R> + <s_T, Q>, with the padded steps' outputs (the carried h) scored too: every parameter, every
    entry of x (floats) and of every initial state array, against central differences in float64."""
    cell, rng = CELLS[name], np.random.default_rng(9)
    N, T, D, H = 4, 4, 3, 3
    x = make_input(ids, N, T, D, rng)
    p, s0 = make_params(cell, D, H, rng), make_state(cell, N, H, rng)
    mask = ragged_mask([4, 1, 3, 0], T) if masked else None
    R, Q = rng.standard_normal((N, T, H)), make_state(cell, N, H, rng)

    def loss():
        out, sT, _ = sequence_forward(cell, x, s0, p, mask)
        return float((out * R).sum() + sum((s * q).sum() for s, q in zip(sT, Q, strict=True)))

    out, sT, cache = sequence_forward(cell, x, s0, p, mask)
    dx, ds0, grads = sequence_backward(cell, R, Q, cache)
    assert (dx is None) == ids and set(grads) == set(KEYS[name]) and len(ds0) == cell.STATE_SIZE
    checks = [(p[k], grads[k], k) for k in KEYS[name]]
    checks += [(s, d, f"state0[{i}]") for i, (s, d) in enumerate(zip(s0, ds0))]
    if not ids:
        checks.append((x, dx, "x"))
        assert mask is None or not dx[~mask].any()                 # a padded step's input gets exactly zero
    worst, _ = assert_central_differences(loss, checks, f"{name} ids={ids} masked={masked}")
    print(f"{name} ids={ids} masked={masked}: worst relative gradient error {worst:.1e} (2-norm)")


def _run_alone(cell, x, s0, p, n, length, R, Q):
    """Sequence n of a batch run by itself over its real steps, no mask. Its padded outputs in the batch equal its
    last h, so their gradient R[n, length:] joins the final state's. Returns (out, sT, dx, ds0, grads)."""
    out, sT, cache = sequence_forward(cell, x[n:n + 1, :length], tuple(s[n:n + 1] for s in s0), p)
    dsT = tuple(q[n:n + 1].copy() for q in Q)
    dsT[0][0] += R[n, length:].sum(axis=0)
    dx, ds0, grads = sequence_backward(cell, R[n:n + 1, :length], dsT, cache)
    return out, sT, dx, ds0, grads


@pytest.mark.parametrize("ids", [False, True], ids=["floats", "ids"])
@pytest.mark.parametrize("name", CELLS)
def test_padded_batch_equals_its_sequences_one_by_one(name, ids):
    """Forward and backward: a padded batch gives each sequence's own outputs, final state, dx and dstate0, and the
    sum of their weight gradients (1e-12: only the BLAS's batch-size-dependent rounding differs); out on a padded
    step is the carried h, bit for bit; other values on the padded steps change no bit of anything."""
    cell, rng = CELLS[name], np.random.default_rng(10)
    N, T, D, H = 5, 6, 4, 5
    lengths = [6, 1, 4, 0, 2]
    mask = ragged_mask(lengths, T)
    x = make_input(ids, N, T, D, rng)
    p, s0 = make_params(cell, D, H, rng), make_state(cell, N, H, rng)
    R, Q = rng.standard_normal((N, T, H)), make_state(cell, N, H, rng)
    out, sT, cache = sequence_forward(cell, x, s0, p, mask)
    dx, ds0, grads = sequence_backward(cell, R, Q, cache)
    total = {k: np.zeros_like(v) for k, v in p.items()}

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)

    for n, length in enumerate(lengths):
        o, s, d, d0, g = _run_alone(cell, x, s0, p, n, length, R, Q)
        close(out[n, :length], o[0])
        last_h = out[n, length - 1] if length else s0[0][n]
        assert all(np.array_equal(out[n, t], last_h) for t in range(length, T))   # the carried h
        for a, b, d0b, d0a in zip(sT, s, ds0, d0, strict=True):
            close(a[n], b[0])
            close(d0b[n], d0a[0])
        if not ids:
            close(dx[n, :length], d[0])
            assert not dx[n, length:].any()
        for k in KEYS[name]:
            total[k] += g[k]
    for k in KEYS[name]:
        close(grads[k], total[k])
    junk = np.where(mask if ids else mask[..., None], x, make_input(ids, N, T, D, rng))   # other padding
    out_j, sT_j, cache_j = sequence_forward(cell, junk, s0, p, mask)
    dx_j, ds0_j, grads_j = sequence_backward(cell, R, Q, cache_j)
    assert np.array_equal(out_j, out) and all(np.array_equal(a, b) for a, b in zip(sT_j + ds0_j, sT + ds0))
    assert ids or np.array_equal(dx_j, dx)
    assert all(np.array_equal(grads_j[k], grads[k]) for k in KEYS[name])


@pytest.mark.parametrize("name", CELLS)
def test_sequence_pass_dtypes_empty_input_and_bad_input(name):
    cell, rng = CELLS[name], np.random.default_rng(11)
    N, T, D, H = 2, 3, 4, 5
    p, s0 = make_params(cell, D, H, rng, np.float32), make_state(cell, N, H, rng, np.float32)
    for ids in (False, True):
        x = make_input(ids, N, T, D, rng)                          # float64 floats: cast to the params' float32
        out, sT, cache = sequence_forward(cell, x, s0, p, ragged_mask([3, 1], T))
        dx, ds0, grads = sequence_backward(cell, np.ones(out.shape), None, cache)
        assert out.dtype == np.float32 and all(a.dtype == np.float32 for a in sT + ds0)
        assert (dx is None) == ids and (ids or dx.dtype == np.float32)
        assert all(grads[k].dtype == np.float32 and grads[k].shape == p[k].shape for k in KEYS[name])
    for x in (np.zeros((N, 0), dtype=int), np.zeros((N, 0, D))):   # T = 0: the initial state, zero grads
        out, sT, cache = sequence_forward(cell, x, s0, p)
        assert out.shape == (N, 0, H) and all(np.array_equal(a, b) and a is not b for a, b in zip(sT, s0))
        dx, ds0, grads = sequence_backward(cell, out, None, cache)
        assert (dx is None or dx.shape == x.shape) and all(not d.any() for d in ds0)
        assert all(grads[k].shape == p[k].shape and not grads[k].any() for k in KEYS[name])
    with pytest.raises(ValueError, match="token ids"):
        sequence_forward(cell, np.array([[0, -1, 2], [1, 1, 1]]), s0, p)
    with pytest.raises(ValueError, match="mask"):
        sequence_forward(cell, make_input(True, N, T, D, rng), s0, p, np.ones((N, T + 1), bool))


@pytest.mark.parametrize("name", list(CELLS) + ["layers", "sequence", "model", "engine"])
def test_docstring_examples(name):
    """The examples in each cell file's docstring (the step pair, then the fused pass), in layers.py, sequence.py,
    model.py and engine.py run."""
    import doctest
    result = doctest.testmod(numpy_cell(name))
    assert result.attempted > 0 and result.failed == 0, name
