"""Tests of `trainax_fm.loss`: every loss against a hand-written numpy reference.

`LOSS_CASES` lists every loss (with a few hyperparameter variants) together with its
numpy reference; the generic tests sweep over it, so a new loss only needs an entry.
"""

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainax_fm as tx
from trainax_fm import loss as L

TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------------------
# numpy references (float64, one state at a time, written from the formulas)
# --------------------------------------------------------------------------------------


def _err(p, t):
    return p if t is None else p - t


def np_mse(p, t=None):
    return np.mean(_err(p, t) ** 2)


def np_mae(p, t=None):
    return np.mean(np.abs(_err(p, t)))


def np_rmse(p, t=None):
    return np.sqrt(np.mean(_err(p, t) ** 2))


def np_nmse(p, t):
    return np.mean((p - t) ** 2) / np.mean(t**2)


def np_nmae(p, t):
    return np.mean(np.abs(p - t)) / np.mean(np.abs(t))


def np_nrmse(p, t, eps=0.0):
    return np.sqrt(np.mean((p - t) ** 2)) / (np.sqrt(np.mean(t**2)) + eps)


def np_spectral_derivative(f, axis, extent):
    """Full complex FFT (the library uses rfft), Nyquist derivative zeroed."""
    n = f.shape[axis]
    k = TWO_PI / extent * np.fft.fftfreq(n, d=1.0 / n)
    if n % 2 == 0:
        k[n // 2] = 0.0
    shape = [1] * f.ndim
    shape[axis] = n
    return np.real(
        np.fft.ifft(1j * k.reshape(shape) * np.fft.fft(f, axis=axis), axis=axis)
    )


FD_STENCILS = {
    2: {1: 1 / 2},
    4: {1: 8 / 12, 2: -1 / 12},
    6: {1: 45 / 60, 2: -9 / 60, 3: 1 / 60},
}


def np_fd_derivative(f, axis, extent, order):
    """Central differences with explicit modular indices (the library uses jnp.roll)."""
    n = f.shape[axis]
    h = extent / n
    idx = np.arange(n)
    out = np.zeros_like(f)
    for j, c in FD_STENCILS[order].items():
        out += c * (
            np.take(f, (idx + j) % n, axis=axis) - np.take(f, (idx - j) % n, axis=axis)
        )
    return out / h


def make_np_sobolev(alpha=1.0, beta=1.0, extent=TWO_PI, method="spectral", order=2):
    def ref(p, t=None):
        e = _err(p, t)
        extents = extent if isinstance(extent, tuple) else (extent,) * (e.ndim - 1)
        grad_sq = np.zeros_like(e)
        for axis, ext in zip(range(1, e.ndim), extents):
            if method == "spectral":
                d = np_spectral_derivative(e, axis, ext)
            else:
                d = np_fd_derivative(e, axis, ext, order)
            grad_sq += d**2
        return alpha * np.mean(e**2) + beta * np.mean(grad_sq)

    return ref


def make_np_composite(refs, weights):
    def ref(p, t=None):
        return sum(w * r(p, t) for r, w in zip(refs, weights))

    return ref


def _np_band_spectra(p, t):
    """Per channel and radial band: `P_x`, `P_y`, `Re(cross)` by explicit band masks."""
    spatial = p.shape[1:]
    axes = tuple(range(1, p.ndim))
    x = np.fft.fftn(p, axes=axes) / np.prod(spatial)
    y = np.fft.fftn(t, axes=axes) / np.prod(spatial)
    radius = np.sqrt(
        sum(
            k**2
            for k in np.meshgrid(*(np.fft.fftfreq(n, 1.0 / n) for n in spatial), indexing="ij")
        )
    )
    bands = np.rint(radius)
    spectra = []
    for band in range(int(bands.max()) + 1):
        mask = bands == band
        spectra.append(
            (
                np.sum(np.abs(x[:, mask]) ** 2, axis=1),
                np.sum(np.abs(y[:, mask]) ** 2, axis=1),
                np.sum(np.real(x[:, mask] * np.conj(y[:, mask])), axis=1),
            )
        )
    return [np.stack(s, axis=1) for s in zip(*spectra)]  # each (C, num_bands)


def np_amse(p, t, eps=1e-12):
    """Subich et al. 2025: sum_k (sqrt Px - sqrt Py)^2 + 2 max(Px, Py) (1 - coherence)."""
    px, py, cross = _np_band_spectra(p, t)
    amplitude = (np.sqrt(px + eps) - np.sqrt(py + eps)) ** 2
    coherence = cross / np.sqrt((px + eps) * (py + eps))
    return np.mean(np.sum(amplitude + 2 * np.maximum(px, py) * (1 - coherence), axis=1))


def np_spectral_amplitude(p, t, eps=1e-12):
    px, py, _ = _np_band_spectra(p, t)
    return np.mean(np.sum((np.sqrt(px + eps) - np.sqrt(py + eps)) ** 2, axis=1))

# (id, factory(**kwargs) -> loss, per-state numpy reference, accepts target=None)
LOSS_CASES = [
    ("mse", lambda **kw: L.MSELoss(**kw), np_mse, True),
    ("mae", lambda **kw: L.MAELoss(**kw), np_mae, True),
    ("rmse", lambda **kw: L.RMSELoss(**kw), np_rmse, True),
    ("nmse", lambda **kw: L.Normalized_MSELoss(**kw), np_nmse, False),
    ("nmae", lambda **kw: L.Normalized_MAELoss(**kw), np_nmae, False),
    ("nrmse", lambda **kw: L.nRMSELoss(**kw), np_nrmse, False),
    (
        "nrmse_eps",
        lambda **kw: L.nRMSELoss(eps=0.1, **kw),
        lambda p, t: np_nrmse(p, t, eps=0.1),
        False,
    ),
    ("sobolev", lambda **kw: L.SobolevLoss(**kw), make_np_sobolev(), True),
    (
        "sobolev_spectral_L1",
        lambda **kw: L.SobolevLoss(0.5, 0.02, domain_extent=1.0, **kw),
        make_np_sobolev(0.5, 0.02, 1.0),
        True,
    ),
    (
        "sobolev_fd2",
        lambda **kw: L.SobolevLoss(2.0, 0.3, gradient="finite_difference", **kw),
        make_np_sobolev(2.0, 0.3, method="fd", order=2),
        True,
    ),
    (
        "sobolev_fd4",
        lambda **kw: L.SobolevLoss(
            1.0, 0.5, gradient="finite_difference", fd_order=4, domain_extent=3.0, **kw
        ),
        make_np_sobolev(1.0, 0.5, 3.0, method="fd", order=4),
        True,
    ),
    (
        "sobolev_fd6",
        lambda **kw: L.SobolevLoss(
            0.0, 1.0, gradient="finite_difference", fd_order=6, **kw
        ),
        make_np_sobolev(0.0, 1.0, method="fd", order=6),
        True,
    ),
    (
        "composite",
        lambda **kw: L.CompositeLoss(
            [L.MSELoss(**kw), L.MAELoss(**kw), L.SobolevLoss(beta=0.1, **kw)],
            [1.0, 0.5, 2.0],
            **kw,
        ),
        make_np_composite([np_mse, np_mae, make_np_sobolev(1.0, 0.1)], [1.0, 0.5, 2.0]),
        True,
    ),
    (
        "composite_normalized",
        lambda **kw: L.CompositeLoss(
            [L.Normalized_MSELoss(**kw), L.nRMSELoss(**kw)], [0.3, 0.7], **kw
        ),
        make_np_composite([np_nmse, np_nrmse], [0.3, 0.7]),
        False,
    ),
    ("amse", lambda **kw: L.AMSELoss(**kw), np_amse, False),
    (
        "amse_eps",
        lambda **kw: L.AMSELoss(eps=1e-3, **kw),
        lambda p, t: np_amse(p, t, eps=1e-3),
        False,
    ),
    (
        "spectral_amplitude",
        lambda **kw: L.SpectralAmplitudeLoss(**kw),
        np_spectral_amplitude,
        False,
    ),
]
# One case per loss class (plus the composite) for the behavioural sweeps, which do not
# depend on hyperparameters; the value test below runs every variant.
_CORE_IDS = (
    "mse",
    "mae",
    "rmse",
    "nmse",
    "nmae",
    "nrmse",
    "sobolev",
    "sobolev_fd4",
    "composite",
    "amse",
    "spectral_amplitude",
)
CORE_CASES = pytest.mark.parametrize(
    "case", [c for c in LOSS_CASES if c[0] in _CORE_IDS], ids=list(_CORE_IDS)
)
NONE_OK_CASES = [case for case in LOSS_CASES if case[3]]
NEEDS_TARGET_CASES = [case for case in LOSS_CASES if not case[3]]

# (batch, channels, *spatial): 1, 2 and 3 spatial axes, even and odd resolutions.
SHAPES = [(3, 2, 16), (2, 2, 8, 7), (2, 1, 4, 6, 5)]


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=shape).astype(np.float32)
    tgt = rng.normal(size=shape).astype(np.float32)
    return pred, tgt


@eqx.filter_jit
def _jcall(loss, *args, **kwargs):
    """`loss(*args, **kwargs)` compiled as one program (much cheaper than op-by-op)."""
    return loss(*args, **kwargs)


@eqx.filter_jit
def _jmany(losses, *args, **kwargs):
    """Several losses on the same inputs, compiled as one program."""
    return tuple(loss(*args, **kwargs) for loss in losses)


@eqx.filter_jit
def _jgrad(loss, pred, tgt):
    return jax.grad(loss)(pred, tgt)


@eqx.filter_jit
def _jspatial(loss, field):
    return loss.spatial_gradient(field)


def _np_batched(ref, pred, tgt=None, reduction=np.mean):
    p64 = pred.astype(np.float64)
    t64 = None if tgt is None else tgt.astype(np.float64)
    per = [ref(p64[b], None if t64 is None else t64[b]) for b in range(p64.shape[0])]
    return reduction(np.asarray(per))


# --------------------------------------------------------------------------------------
# generic sweep over every loss
# --------------------------------------------------------------------------------------


def test_public_names():
    for name in [
        "BaseLoss",
        "MSELoss",
        "MAELoss",
        "RMSELoss",
        "nRMSELoss",
        "Normalized_MSELoss",
        "Normalized_MAELoss",
        "CompositeLoss",
        "SobolevLoss",
        "AMSELoss",
        "SpectralAmplitudeLoss",
    ]:
        assert getattr(tx.loss, name) is getattr(L, name)


def test_trainax_style_construction():
    assert L.MSELoss().batch_reduction is jnp.mean
    assert L.MAELoss(batch_reduction=jnp.sum).batch_reduction is jnp.sum
    assert L.Normalized_MSELoss(batch_reduction=jnp.sum).batch_reduction is jnp.sum
    assert L.Normalized_MAELoss().batch_reduction is jnp.mean
    loss = L.SobolevLoss(0.5, 2.0)
    assert (loss.alpha, loss.beta) == (0.5, 2.0)
    assert loss.domain_extent == pytest.approx(TWO_PI)


def _is_spectral(case):
    return case[0].startswith(("amse", "spectral"))


def _value_params():
    # Spatial losses on 1, 2 and 3 spatial axes; pointwise losses on a 2D field and an
    # ODE state (C,), where the number of spatial axes cannot matter.
    for case in LOSS_CASES:
        spatial = "sobolev" in case[0] or case[0] == "composite" or _is_spectral(case)
        for shape in SHAPES if spatial else [SHAPES[1], (4, 3)]:
            yield pytest.param(case, shape, id=f"{case[0]}-{shape}")


@pytest.mark.parametrize("case, shape", list(_value_params()))
def test_value_matches_numpy_reference(case, shape):
    _, factory, ref, _ = case
    pred, tgt = _data(shape)
    loss = factory()
    expected = _np_batched(ref, pred, tgt)
    # (`__call__` is `multi_batch`; both vmap `single_batch`.)
    call, single = eqx.filter_jit(
        lambda lo, p, t: (lo(p, t), lo.single_batch(p[0], t[0]))
    )(loss, pred, tgt)
    np.testing.assert_allclose(call, expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(
        single, ref(pred[0].astype(np.float64), tgt[0]), rtol=2e-5, atol=1e-6
    )


@CORE_CASES
def test_batch_reduction(case):
    _, factory, ref, _ = case
    pred, tgt = _data((4, 2, 8))
    summed = factory(batch_reduction=jnp.sum)
    maxed = factory(batch_reduction=jnp.max)
    assert summed.batch_reduction is jnp.sum
    total, largest, mean = _jmany((summed, maxed, factory()), pred, tgt)
    np.testing.assert_allclose(total, _np_batched(ref, pred, tgt, np.sum), rtol=2e-5)
    np.testing.assert_allclose(largest, _np_batched(ref, pred, tgt, np.max), rtol=2e-5)
    np.testing.assert_allclose(total, 4 * mean, rtol=2e-5)


@pytest.mark.parametrize("case", NONE_OK_CASES, ids=[c[0] for c in NONE_OK_CASES])
def test_target_none_reduces_prediction_alone(case):
    _, factory, ref, _ = case
    pred, _ = _data((3, 2, 8, 6))
    loss = factory()
    expected = _np_batched(ref, pred, None)
    alone, with_zeros = eqx.filter_jit(lambda lo, p: (lo(p), lo(p, jnp.zeros_like(p))))(
        loss, pred
    )
    np.testing.assert_allclose(alone, expected, rtol=2e-5)
    # Same as comparing with an all-zero target.
    np.testing.assert_allclose(alone, with_zeros, rtol=1e-6)


@pytest.mark.parametrize(
    "case", NEEDS_TARGET_CASES, ids=[c[0] for c in NEEDS_TARGET_CASES]
)
def test_target_none_raises_for_normalised_losses(case):
    _, factory, _, _ = case
    pred, _ = _data((3, 2, 8))
    loss = factory()
    with pytest.raises(ValueError, match="target"):
        loss(pred)
    with pytest.raises(ValueError, match="target"):
        loss.single_batch(pred[0])


@CORE_CASES
def test_shape_mismatch_raises(case):
    _, factory, _, _ = case
    loss = factory()
    pred, _ = _data((2, 1, 8))
    bad = np.ones((2, 1, 1), dtype=np.float32)  # would broadcast silently
    with pytest.raises(ValueError, match=r"\(2, 1, 8\).*\(2, 1, 1\)"):
        loss(pred, bad)
    with pytest.raises(ValueError, match=r"\(1, 8\).*\(1, 1\)"):
        loss.single_batch(pred[0], bad[0])
    with pytest.raises(ValueError, match="must match"):
        jax.jit(loss)(pred, bad)


@CORE_CASES
def test_jit_and_module_as_argument(case):
    _, factory, _, _ = case
    loss = factory()
    pred, tgt = _data((3, 2, 8, 6))
    expected = _jcall(loss, pred, tgt)  # eqx.filter_jit: the loss as an argument
    # The loss is a PyTree whose leaves jax.jit can take as arguments, too.
    np.testing.assert_allclose(
        jax.jit(lambda lo, p, t: lo(p, t))(loss, pred, tgt), expected, rtol=1e-5
    )


@CORE_CASES
def test_vmap_over_extra_axis(case):
    _, factory, _, _ = case
    loss = factory()
    pred, tgt = _data((5, 3, 2, 8))  # ensemble of 5 batches
    vmapped = jax.jit(jax.vmap(loss))(pred, tgt)
    looped = jnp.stack([_jcall(loss, pred[i], tgt[i]) for i in range(5)])
    np.testing.assert_allclose(vmapped, looped, rtol=1e-5)


@CORE_CASES
def test_gradient_is_finite_even_at_zero_error(case):
    _, factory, _, _ = case
    loss = factory()
    pred, tgt = _data((2, 2, 8))
    for p in (pred, tgt):  # generic point and prediction == target
        grad = _jgrad(loss, jnp.asarray(p), tgt)
        assert grad.shape == p.shape
        assert bool(jnp.all(jnp.isfinite(grad)))


@CORE_CASES
def test_gradient_matches_finite_differences(case):
    _, factory, _, _ = case
    loss = factory()
    pred, tgt = _data((2, 1, 8), seed=3)
    direction = np.random.default_rng(4).normal(size=pred.shape)
    grad = _jgrad(loss, jnp.asarray(pred), tgt)
    # Central difference quotient of the float64 numpy reference.
    eps = 1e-4
    ref = case[2]
    plus = _np_batched(ref, pred.astype(np.float64) + eps * direction, tgt)
    minus = _np_batched(ref, pred.astype(np.float64) - eps * direction, tgt)
    np.testing.assert_allclose(
        np.sum(np.asarray(grad) * direction),
        (plus - minus) / (2 * eps),
        rtol=2e-3,
        atol=1e-5,
    )


# --------------------------------------------------------------------------------------
# specific losses
# --------------------------------------------------------------------------------------


def test_mse_and_mae_hand_values():
    pred = jnp.array([[[1.0, 2.0, 3.0, 4.0]]])
    tgt = jnp.array([[[1.0, 0.0, 3.0, 0.0]]])
    assert float(L.MSELoss()(pred, tgt)) == pytest.approx((4 + 16) / 4)
    assert float(L.MAELoss()(pred, tgt)) == pytest.approx((2 + 4) / 4)
    assert float(L.RMSELoss()(pred, tgt)) == pytest.approx(math.sqrt(5.0))
    assert float(L.Normalized_MSELoss()(pred, tgt)) == pytest.approx(5.0 / 2.5)
    assert float(L.Normalized_MAELoss()(pred, tgt)) == pytest.approx(1.5 / 1.0)
    assert float(L.nRMSELoss()(pred, tgt)) == pytest.approx(math.sqrt(5.0 / 2.5))
    # e = (0, 2, 0, 4) at x_j = j*pi/2 is 1.5 - sin(x) - 1.5*cos(2x); cos(2x) is the
    # Nyquist mode (derivative zeroed), so grad e = -cos(x) with mean square 1/2, and
    # 0.5 * mean(e^2) + 2 * mean(grad e^2) = 0.5 * 5 + 2 * 0.5 (evaluated eagerly).
    assert float(L.SobolevLoss(0.5, 2.0)(pred, tgt)) == pytest.approx(3.5, rel=1e-6)
    fd = L.SobolevLoss(0.5, 2.0, gradient="finite_difference")  # (e[j+1]-e[j-1])/pi
    assert float(fd(pred, tgt)) == pytest.approx(2.5 + 2.0 * 2 / np.pi**2, rel=1e-6)


def test_rmse_is_mean_of_per_sample_roots():
    pred = jnp.stack([jnp.ones((1, 4)), 3 * jnp.ones((1, 4))])
    assert float(L.RMSELoss()(pred)) == pytest.approx(2.0)  # (1 + 3) / 2, not sqrt(5)


def test_nrmse_identical_fields_is_zero():
    _, tgt = _data((3, 2, 16, 8))
    nrmse, rmse = _jmany((L.nRMSELoss(), L.RMSELoss()), tgt, tgt)
    assert float(nrmse) == 0.0
    assert float(rmse) == 0.0
    grad = _jgrad(L.nRMSELoss(), jnp.asarray(tgt), tgt)
    assert bool(jnp.all(grad == 0.0))


def test_nrmse_is_scale_invariant_and_eps_guards_zero_target():
    pred, tgt = _data((2, 1, 8))
    loss = L.nRMSELoss()
    np.testing.assert_allclose(loss(10 * pred, 10 * tgt), loss(pred, tgt), rtol=1e-5)
    zeros = np.zeros_like(tgt)
    assert not bool(jnp.isfinite(loss(pred, zeros)))
    guarded = L.nRMSELoss(eps=1e-6)(pred, zeros)
    assert bool(jnp.isfinite(guarded))
    with pytest.raises(ValueError, match="eps"):
        L.nRMSELoss(eps=-1.0)
    with pytest.raises(TypeError, match="eps"):
        L.nRMSELoss(eps="small")


def test_composite_equals_weighted_sum_and_validates():
    pred, tgt = _data((3, 2, 8))
    mse, mae = L.MSELoss(), L.MAELoss()
    comp = L.CompositeLoss([mse, mae], [2.0, jnp.array(0.25)])
    np.testing.assert_allclose(
        comp(pred, tgt), 2.0 * mse(pred, tgt) + 0.25 * mae(pred, tgt), rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"2 losses but 3 weights"):
        L.CompositeLoss([mse, mae], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"1 losses but 0 weights"):
        L.CompositeLoss([mse], [])
    with pytest.raises(ValueError, match="at least one"):
        L.CompositeLoss([], [])
    with pytest.raises(TypeError, match="losses\\[1\\]"):
        L.CompositeLoss([mse, jnp.mean], [1.0, 1.0])
    with pytest.raises(TypeError, match="list or tuple"):
        L.CompositeLoss(mse, [1.0])
    with pytest.raises(ValueError, match="scalar"):
        L.CompositeLoss([mse], [jnp.ones(2)])
    with pytest.warns(UserWarning, match="batch_reduction"):
        L.CompositeLoss([L.MSELoss(batch_reduction=jnp.sum)], [1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L.CompositeLoss(
            [L.MSELoss(batch_reduction=jnp.sum)], [1.0], batch_reduction=jnp.sum
        )


def test_composite_nested():
    pred, tgt = _data((2, 1, 8))
    inner = L.CompositeLoss([L.MSELoss(), L.MAELoss()], [1.0, 1.0])
    outer = L.CompositeLoss([inner, L.RMSELoss()], [0.5, 2.0])
    expected = (
        0.5 * _np_batched(np_mse, pred, tgt)
        + 0.5 * _np_batched(np_mae, pred, tgt)
        + 2.0 * _np_batched(np_rmse, pred, tgt)
    )
    np.testing.assert_allclose(outer(pred, tgt), expected, rtol=1e-5)


# --------------------------------------------------------------------------------------
# Sobolev
# --------------------------------------------------------------------------------------


def _grid(n, extent):
    return np.arange(n) * extent / n


@pytest.mark.parametrize("n", [32, 33])
@pytest.mark.parametrize("extent", [TWO_PI, 1.0, 5.0])
def test_spectral_gradient_of_sine_1d(n, extent):
    loss = L.SobolevLoss(domain_extent=None if extent == TWO_PI else extent)
    x = _grid(n, extent)
    k = TWO_PI * 3 / extent
    field = np.stack([np.sin(k * x), np.cos(2 * k * x) + 0.5]).astype(np.float32)
    grad = _jspatial(loss, field)
    assert grad.shape == (1, 2, n)
    np.testing.assert_allclose(grad[0, 0], k * np.cos(k * x), atol=2e-4 * k)
    np.testing.assert_allclose(grad[0, 1], -2 * k * np.sin(2 * k * x), atol=4e-4 * k)


def test_spectral_gradient_nyquist_mode_is_zeroed():
    n = 16
    nyquist = np.cos(np.pi * np.arange(n)).astype(np.float32)[None]  # (-1)^j
    grad = _jspatial(L.SobolevLoss(), nyquist)
    np.testing.assert_allclose(grad, 0.0, atol=1e-5)
    # So a Nyquist error contributes only through the alpha term.
    np.testing.assert_allclose(
        _jcall(L.SobolevLoss(1.0, 1.0), nyquist[None]), 1.0, rtol=1e-6
    )


def test_spectral_gradient_2d():
    lx, ly, nx, ny = 2.0, 3.0, 24, 20
    x, y = np.meshgrid(_grid(nx, lx), _grid(ny, ly), indexing="ij")
    kx, ky = TWO_PI * 2 / lx, TWO_PI * 1 / ly
    field = (np.sin(kx * x) * np.cos(ky * y))[None].astype(np.float32)
    loss = L.SobolevLoss(domain_extent=(lx, ly))
    grad = _jspatial(loss, field)
    assert grad.shape == (2, 1, nx, ny)
    np.testing.assert_allclose(
        grad[0, 0], kx * np.cos(kx * x) * np.cos(ky * y), atol=1e-4 * kx
    )
    np.testing.assert_allclose(
        grad[1, 0], -ky * np.sin(kx * x) * np.sin(ky * y), atol=1e-4 * ky
    )
    # mean |grad f|^2 = (kx^2 + ky^2) / 4 and mean f^2 = 1/4 for this product of modes.
    value = _jcall(L.SobolevLoss(0.5, 2.0, domain_extent=(lx, ly)), field[None])
    np.testing.assert_allclose(value, 0.5 / 4 + 2.0 * (kx**2 + ky**2) / 4, rtol=1e-5)


def test_spectral_gradient_3d():
    n = 12
    x, y, z = np.meshgrid(*[_grid(n, TWO_PI)] * 3, indexing="ij")
    field = np.stack([np.sin(x + 2 * y - z), np.cos(3 * z)]).astype(np.float32)
    grad = _jspatial(L.SobolevLoss(), field)
    assert grad.shape == (3, 2, n, n, n)
    c = np.cos(x + 2 * y - z)
    np.testing.assert_allclose(grad[0, 0], c, atol=1e-4)
    np.testing.assert_allclose(grad[1, 0], 2 * c, atol=2e-4)
    np.testing.assert_allclose(grad[2, 0], -c, atol=1e-4)
    np.testing.assert_allclose(grad[2, 1], -3 * np.sin(3 * z), atol=3e-4)
    np.testing.assert_allclose(grad[:2, 1], 0.0, atol=1e-4)
    # Integer wavenumbers on the 2*pi torus: mean|grad|^2 = (1+4+1)/2 + 9/2 per channel.
    np.testing.assert_allclose(
        _jcall(L.SobolevLoss(0.0, 1.0), field[None]), (3.0 + 4.5) / 2, rtol=1e-5
    )


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_spectral_and_finite_difference_agree_when_resolved(ndim):
    n = {1: 64, 2: 32, 3: 24}[ndim]
    grids = np.meshgrid(*[_grid(n, 1.0)] * ndim, indexing="ij")
    field = np.stack([np.sin(TWO_PI * sum(grids)), np.exp(np.cos(TWO_PI * grids[0]))])
    field = field.astype(np.float32)[None]
    spectral = float(_jcall(L.SobolevLoss(1.0, 1.0, domain_extent=1.0), field))
    errors = []
    for order, rtol in [(2, 4e-2), (4, 1.5e-3), (6, 1e-4)]:
        fd = L.SobolevLoss(
            1.0, 1.0, gradient="finite_difference", fd_order=order, domain_extent=1.0
        )
        value = float(_jcall(fd, field))
        assert value == pytest.approx(spectral, rel=rtol)
        errors.append(abs(value - spectral))
    assert errors[0] > errors[1] > errors[2]


def test_finite_difference_converges_at_its_order():
    errors = {2: [], 4: []}
    for n in (32, 64):
        x = _grid(n, TWO_PI)
        field = np.sin(x).astype(np.float64)
        for order in errors:
            d = np_fd_derivative(field[None], 1, TWO_PI, order)
            errors[order].append(np.max(np.abs(d[0] - np.cos(x))))
        grad = _jspatial(
            L.SobolevLoss(gradient="finite_difference", fd_order=4),
            field[None].astype(np.float32),
        )
        np.testing.assert_allclose(
            grad[0], np_fd_derivative(field[None], 1, TWO_PI, 4), atol=1e-5
        )
    for order, (coarse, fine) in errors.items():
        assert math.log2(coarse / fine) == pytest.approx(order, abs=0.2)


@pytest.mark.parametrize("gradient", ["spectral", "finite_difference"])
def test_sobolev_beta_zero_is_scaled_mse(gradient):
    pred, tgt = _data((3, 2, 8, 6))
    loss = L.SobolevLoss(alpha=0.7, beta=0.0, gradient=gradient)
    np.testing.assert_allclose(
        _jcall(loss, pred, tgt), 0.7 * _jcall(L.MSELoss(), pred, tgt), rtol=1e-6
    )


def test_sobolev_is_translation_invariant_and_not_below_alpha_mse():
    pred, tgt = _data((2, 1, 10, 12))
    loss = L.SobolevLoss(0.5, 0.3)
    rolled = _jcall(loss, np.roll(pred, 3, axis=-1), np.roll(tgt, 3, axis=-1))
    np.testing.assert_allclose(rolled, _jcall(loss, pred, tgt), rtol=1e-5)
    assert float(_jcall(loss, pred, tgt)) >= float(0.5 * _jcall(L.MSELoss(), pred, tgt))
    # A constant offset has no gradient.
    np.testing.assert_allclose(_jcall(loss, tgt + 2.0, tgt), 0.5 * 4.0, rtol=1e-5)


def test_sobolev_time_dependent_weights():
    pred, tgt = _data((4, 2, 16))
    time = jnp.array([0.0, 0.25, 0.5, 1.0])
    alpha = lambda t: 1.0 - t  # noqa: E731
    beta = lambda t: 2.0 * t**2  # noqa: E731
    loss = L.SobolevLoss(alpha, beta)
    expected = np.mean(
        [
            make_np_sobolev(1.0 - float(t), 2.0 * float(t) ** 2)(
                pred[b].astype(np.float64), tgt[b].astype(np.float64)
            )
            for b, t in enumerate(time)
        ]
    )
    np.testing.assert_allclose(_jcall(loss, pred, tgt, time=time), expected, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(loss)(pred, tgt, time=time), expected, rtol=1e-5)
    np.testing.assert_allclose(
        loss.single_batch_at_time(pred[1], tgt[1], jnp.array(0.25)),
        make_np_sobolev(0.75, 0.125)(pred[1].astype(np.float64), tgt[1]),
        rtol=1e-5,
    )
    # A scalar time is broadcast over the batch.
    np.testing.assert_allclose(
        _jcall(loss, pred, tgt, time=0.5),
        _jcall(L.SobolevLoss(0.5, 0.5), pred, tgt),
        rtol=1e-5,
    )
    # Only one weight callable; constant weights ignore the time.
    mixed = L.SobolevLoss(0.3, beta)
    np.testing.assert_allclose(
        _jcall(mixed, pred, tgt, time=jnp.full(4, 0.5)),
        _jcall(L.SobolevLoss(0.3, 0.5), pred, tgt),
        rtol=1e-5,
    )
    constant = L.SobolevLoss(0.3, 0.2)
    np.testing.assert_allclose(
        _jcall(constant, pred, tgt, time=time), _jcall(constant, pred, tgt), rtol=1e-6
    )
    # The weights' schedule is differentiable w.r.t. the time.
    d_dt = jax.jit(jax.grad(lambda t: loss.single_batch_at_time(pred[0], tgt[0], t)))(
        0.5
    )
    assert bool(jnp.isfinite(d_dt))


def test_time_is_forwarded_by_composite_and_ignored_by_plain_losses():
    pred, tgt = _data((3, 1, 8))
    time = jnp.array([0.1, 0.5, 0.9])
    sob = L.SobolevLoss(1.0, lambda t: t)
    comp = L.CompositeLoss([L.MSELoss(), sob], [1.0, 3.0])
    np.testing.assert_allclose(
        _jcall(comp, pred, tgt, time=time),
        _jcall(L.MSELoss(), pred, tgt) + 3.0 * _jcall(sob, pred, tgt, time=time),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        _jcall(L.MSELoss(), pred, tgt, time=time),
        _jcall(L.MSELoss(), pred, tgt),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="without a time"):
        comp(pred, tgt)


def test_sobolev_callable_weight_without_time_raises():
    pred, tgt = _data((2, 1, 8))
    for loss, name in [
        (L.SobolevLoss(alpha=lambda t: t), "alpha"),
        (L.SobolevLoss(beta=lambda t: t), "beta"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`.*without a time"):
            loss(pred, tgt)
        with pytest.raises(ValueError, match="without a time"):
            loss.single_batch(pred[0], tgt[0])
        with pytest.raises(ValueError, match="without a time"):
            jax.jit(loss)(pred, tgt)


def test_sobolev_callable_weight_must_return_scalar():
    pred, tgt = _data((2, 1, 8))
    loss = L.SobolevLoss(beta=lambda t: jnp.ones(3) * t)
    with pytest.raises(ValueError, match="scalar"):
        _jcall(loss, pred, tgt, time=jnp.array([0.1, 0.2]))


def test_sobolev_without_spatial_axes_raises():
    ode_batch = jnp.ones((4, 3))
    sobolevs = [L.SobolevLoss(), L.SobolevLoss(beta=0.0)]
    sobolevs.append(L.SobolevLoss(gradient="finite_difference"))
    for loss in sobolevs:
        with pytest.raises(ValueError, match=r"\(3,\).*MSELoss"):
            loss(ode_batch, ode_batch)
        with pytest.raises(ValueError, match=r"\(3,\).*MSELoss"):
            _jcall(loss, ode_batch, ode_batch)
    with pytest.raises(ValueError, match="MSELoss"):
        _jspatial(L.SobolevLoss(), jnp.ones(3))


def test_sobolev_domain_extent_per_axis_must_match():
    loss = L.SobolevLoss(domain_extent=(1.0, 2.0))
    with pytest.raises(ValueError, match="2 entries.*1 spatial axes"):
        _jcall(loss, jnp.ones((1, 1, 8)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"beta": -0.1}, ValueError, "beta"),
        ({"beta": float("nan")}, ValueError, "beta"),
        ({"alpha": "1"}, TypeError, "alpha"),
        ({"beta": True}, TypeError, "beta"),
        ({"alpha": jnp.ones(2)}, TypeError, "alpha"),
        ({"gradient": "fourier"}, ValueError, "gradient"),
        ({"gradient": None}, ValueError, "gradient"),
        ({"domain_extent": 0.0}, ValueError, "domain_extent"),
        ({"domain_extent": -2.0}, ValueError, "domain_extent"),
        ({"domain_extent": "1"}, TypeError, "domain_extent"),
        ({"domain_extent": ()}, ValueError, "domain_extent"),
        ({"domain_extent": (1.0, -1.0)}, ValueError, "domain_extent"),
        ({"fd_order": 3}, ValueError, "fd_order"),
        ({"fd_order": True}, ValueError, "fd_order"),
    ],
)
def test_sobolev_construction_checks(kwargs, error, match):
    with pytest.raises(error, match=match):
        L.SobolevLoss(**kwargs)


def test_sobolev_accepts_numpy_and_jax_scalars():
    loss = L.SobolevLoss(np.float32(0.5), jnp.array(2.0))
    assert (loss.alpha, loss.beta) == (0.5, 2.0)
    assert isinstance(loss.alpha, float)


@pytest.mark.parametrize("gradient", ["spectral", "finite_difference"])
def test_sobolev_gradient_analytic(gradient):
    # For e = sin(k x) on the 2*pi torus, d/de [a mean(e^2) + b mean(e_x^2)]
    # = (2/N) (a + b*lam) e, with lam = k^2 (spectral) or sin(k h)^2 / h^2 (FD2).
    n, k, a, b = 32, 3, 0.4, 1.5
    x = _grid(n, TWO_PI)
    tgt = np.zeros((1, 1, n), dtype=np.float32)
    pred = np.sin(k * x).astype(np.float32)[None, None]
    h = TWO_PI / n
    lam = k**2 if gradient == "spectral" else (np.sin(k * h) / h) ** 2
    grad = _jgrad(L.SobolevLoss(a, b, gradient=gradient), jnp.asarray(pred), tgt)
    np.testing.assert_allclose(grad, 2.0 / n * (a + b * lam) * pred, atol=1e-5)


def test_mse_gradient_analytic():
    pred, tgt = _data((2, 3, 4))
    grad = jax.grad(L.MSELoss())(jnp.asarray(pred), tgt)
    np.testing.assert_allclose(grad, 2 * (pred - tgt) / pred.size, rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shift=st.integers(0, 11))
def test_sobolev_properties(seed, shift):
    pred, tgt = _data((2, 1, 12), seed=seed)
    loss = L.SobolevLoss(0.5, 0.25)
    value = float(_jcall(loss, pred, tgt))
    assert value >= 0.5 * float(_jcall(L.MSELoss(), pred, tgt)) * (1 - 1e-6)
    assert float(
        _jcall(loss, np.roll(pred, shift, -1), np.roll(tgt, shift, -1))
    ) == pytest.approx(value, rel=1e-5)
    # Symmetric in prediction and target.
    assert float(_jcall(loss, tgt, pred)) == pytest.approx(value, rel=1e-6)


# --------------------------------------------------------------------------------------
# spectral losses (AMSE, spectral amplitude)
# --------------------------------------------------------------------------------------


def _random_phases(field, seed):
    """`field` with the same amplitude in every Fourier mode and random phases (real)."""
    axes = tuple(range(1, field.ndim))
    spectrum = np.fft.fftn(field, axes=axes)
    noise = np.random.default_rng(seed).normal(size=field.shape)
    phases = np.exp(1j * np.angle(np.fft.fftn(noise, axes=axes)))  # Hermitian
    return np.real(np.fft.ifftn(spectrum * phases, axes=axes)).astype(np.float32)


@pytest.mark.parametrize("shape", [(2, 16), (1, 8, 6)], ids=["1d", "2d"])
def test_spectral_losses_identities(shape):
    """The paper's checks: zero at a perfect prediction; a right spectrum with wrong
    phases has no amplitude error but a decorrelation error; AMSE >= MSE, with equality
    when every band has the target's power."""
    rng = np.random.default_rng(5)
    target = rng.normal(size=shape).astype(np.float32)
    amse, amplitude = L.AMSELoss(), L.SpectralAmplitudeLoss()
    mse = L.MSELoss()
    values = eqx.filter_jit(
        lambda p, t: (amse.single_batch(p, t), amplitude.single_batch(p, t), mse.single_batch(p, t))
    )
    perfect = values(target, target)
    np.testing.assert_allclose(perfect, 0.0, atol=1e-6)

    scrambled = _random_phases(target, 6)
    a, s, m = values(scrambled, target)
    assert float(s) < 1e-5 * float(m)
    assert float(a) > 0.5 * float(m)
    # Same band powers: the AMSE is the MSE (max(P, P) = sqrt(P P)).
    np.testing.assert_allclose(a, m, rtol=1e-4)

    # A damped (blurred) prediction: AMSE penalises it more than the MSE does.
    damped = 0.5 * target
    a, _, m = values(damped, target)
    assert float(a) > float(m)
    np.testing.assert_allclose(a, np_amse(damped.astype(np.float64), target), rtol=1e-5)


def test_spectral_gradient_finite_at_zero_prediction_and_zero_target():
    """Bands without power (a zero field) keep the square roots differentiable."""
    zero = jnp.zeros((2, 1, 8))
    field = jnp.asarray(_data((2, 1, 8))[0])
    for loss in (L.AMSELoss(), L.SpectralAmplitudeLoss()):
        for pred, tgt in ((zero, field), (field, zero), (zero, zero)):
            grad = _jgrad(loss, pred, tgt)
            assert bool(jnp.all(jnp.isfinite(grad)))


def test_spectral_losses_validate():
    with pytest.raises(ValueError, match="eps"):
        L.AMSELoss(eps=0.0)
    with pytest.raises(ValueError, match="ODE"):
        L.AMSELoss().single_batch(jnp.ones(3), jnp.ones(3))
    # The AMSE is a drop-in time-level loss of every rollout configuration.
    windows = jnp.asarray(_data((2, 3, 1, 8))[0])
    stepper = lambda u: jnp.roll(u, 1, axis=-1)  # noqa: E731
    value = tx.configuration.Supervised(2, time_level_loss=L.AMSELoss())(stepper, windows)
    assert bool(jnp.isfinite(value))
