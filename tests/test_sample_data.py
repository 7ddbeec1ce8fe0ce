import jax
import jax.numpy as jnp
import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm import sample_data

KEY = jax.random.PRNGKey(0)
# One small configuration shared by most tests (each new grid/sample/mode combination
# costs a fresh compilation).
SMALL = dict(num_points=16, num_samples=3, highest_init_mode=4)


# ---------------------------------------------------------------- advection


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (20, 100, 1, 30)),
        (dict(SMALL, temporal_horizon=7), (3, 7, 1, 16)),
        # the highest admissible mode, and a single snapshot
        (dict(num_points=8, num_samples=3, temporal_horizon=1, highest_init_mode=4),
         (3, 1, 1, 8)),
    ],
)
def test_advection_shape_and_dtype(kwargs, shape):
    trj = sample_data.advection_1d_periodic(key=KEY, **kwargs)
    assert trj.shape == shape
    assert trj.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(trj)))


def _reference_ic(key, num_samples, num_points, highest_mode):
    """The IC built by hand from the documented key usage, in float64 NumPy."""
    x = np.linspace(0.0, 2 * np.pi, num_points + 1)[:-1]
    ics = []
    for sample_key in jax.random.split(key, num_samples):
        sine_key, cosine_key, _ = jax.random.split(sample_key, 3)
        a = np.asarray(
            jax.random.uniform(sine_key, (highest_mode,), minval=-1, maxval=1)
        )
        b = np.asarray(
            jax.random.uniform(cosine_key, (highest_mode,), minval=-1, maxval=1)
        )
        k = np.arange(1, highest_mode + 1)[:, None]
        ics.append(a @ np.sin(k * x) + b @ np.cos(k * x))
    return np.stack(ics)


def test_advection_initial_condition_at_index_zero():
    key = jax.random.PRNGKey(42)
    trj = sample_data.advection_1d_periodic(temporal_horizon=5, key=key, **SMALL)
    trj = np.asarray(trj)
    np.testing.assert_allclose(
        trj[:, 0, 0], _reference_ic(key, 3, 16, 4), rtol=0, atol=1e-5
    )
    # zero mean (no offset)
    np.testing.assert_allclose(np.mean(trj[:, 0, 0], axis=-1), 0.0, atol=1e-5)


@pytest.mark.parametrize("cfl", [1.0, 2.0, -1.0, 3.0])
def test_advection_integer_cfl_is_a_roll(cfl):
    trj = np.asarray(
        sample_data.advection_1d_periodic(
            cfl=cfl, temporal_horizon=25, key=KEY, **SMALL
        )
    )
    ic = trj[:, 0]
    # float32 phase factors: the round-off grows slowly with the shift per step
    atol = 1e-5 if abs(cfl) == 1.0 else 5e-5
    for t in range(trj.shape[1]):
        np.testing.assert_allclose(
            trj[:, t], np.roll(ic, int(cfl) * t, axis=-1), rtol=0, atol=atol
        )


def test_advection_fractional_cfl_returns_after_one_period():
    # 30 cells at 0.75 cells per step: back to the IC after 40 steps
    trj = np.asarray(sample_data.advection_1d_periodic(key=KEY))
    np.testing.assert_allclose(trj[:, 40], trj[:, 0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(trj[:, 80], trj[:, 0], rtol=0, atol=1e-4)
    # the L2 norm is conserved along the trajectory
    norms = np.linalg.norm(trj[:, :, 0], axis=-1)
    np.testing.assert_allclose(
        norms, np.broadcast_to(norms[:, :1], norms.shape), rtol=1e-5
    )


def test_advection_matches_trainax_numbers():
    # reference numbers produced by trainax 0.0.2 for `PRNGKey(0)` and the defaults
    trj = np.asarray(sample_data.advection_1d_periodic(key=KEY))
    np.testing.assert_allclose(
        trj[0, 0, 0, :4],
        [-1.832226037979126, -1.2394843101501465, -0.3658498525619507,
         0.1964530050754547],
        rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(
        trj[3, 57, 0, 10:13],
        [-1.4769575595855713, -1.3842703104019165, 0.03387317806482315],
        rtol=1e-5, atol=1e-5,
    )
    np.testing.assert_allclose(np.abs(trj).sum(), 63675.140625, rtol=1e-5)


def test_advection_is_jittable_and_reproducible():
    fn = jax.jit(
        lambda key, cfl: sample_data.advection_1d_periodic(
            cfl=cfl, temporal_horizon=6, key=key, **SMALL
        )
    )
    eager = sample_data.advection_1d_periodic(
        cfl=0.5, temporal_horizon=6, key=KEY, **SMALL
    )
    np.testing.assert_allclose(fn(KEY, 0.5), eager, rtol=0, atol=1e-5)
    again = sample_data.advection_1d_periodic(
        cfl=0.5, temporal_horizon=6, key=KEY, **SMALL
    )
    np.testing.assert_array_equal(again, eager)
    # new-style typed keys work too
    typed = sample_data.advection_1d_periodic(
        temporal_horizon=3, key=jax.random.key(0), **SMALL
    )
    assert typed.shape == (3, 3, 1, 16)


# ------------------------------------------------------------------- lorenz


def _numpy_rk4(u, dt, sigma, rho, beta):
    def rhs(v):
        x, y, z = v
        return np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])

    k1 = rhs(u)
    k2 = rhs(u + dt / 2 * k1)
    k3 = rhs(u + dt / 2 * k2)
    k4 = rhs(u + dt * k3)
    return u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


@pytest.mark.parametrize(
    "dt, sigma, rho, beta",
    [(0.01, 10.0, 28.0, 8 / 3), (0.05, 12.0, 20.0, 2.0)],
)
def test_lorenz_stepper_matches_numpy_rk4(dt, sigma, rho, beta):
    stepper = sample_data.make_lorenz_stepper_rk4(dt, sigma=sigma, rho=rho, beta=beta)
    u_ours = jnp.array([1.0, -2.0, 20.0])
    u_ref = np.array([1.0, -2.0, 20.0])
    for _ in range(5):
        u_ours = stepper(u_ours)
        u_ref = _numpy_rk4(u_ref, dt, sigma, rho, beta)
        np.testing.assert_allclose(u_ours, u_ref, rtol=1e-5, atol=1e-5)
    assert u_ours.shape == (3,)


def test_lorenz_stepper_is_vmappable_and_jittable():
    stepper = sample_data.make_lorenz_stepper_rk4()
    states = jax.random.normal(KEY, (4, 3))
    batched = jax.jit(jax.vmap(stepper))(states)
    for i in range(4):
        np.testing.assert_allclose(batched[i], stepper(states[i]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        stepper(jnp.zeros(4))


def test_lorenz_shape_dtype_and_default_values():
    trj = sample_data.lorenz_rk4(key=KEY)
    assert trj.shape == (20, 1000, 3)
    assert trj.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(trj)))


def test_lorenz_initial_condition_without_warmup():
    trj = sample_data.lorenz_rk4(
        5, temporal_horizon=3, num_warmup_steps=0, init_std=2.5, key=KEY
    )
    np.testing.assert_allclose(
        trj[:, 0], jax.random.normal(KEY, (5, 3)) * 2.5, rtol=1e-6
    )
    stepper = sample_data.make_lorenz_stepper_rk4()
    np.testing.assert_allclose(trj[:, 1], jax.vmap(stepper)(trj[:, 0]), rtol=1e-6)


@pytest.mark.parametrize("warmup", [1, 37])
def test_lorenz_warmup_discards_leading_states(warmup):
    key = jax.random.PRNGKey(7)
    long = sample_data.lorenz_rk4(
        3, temporal_horizon=warmup + 20, num_warmup_steps=0, key=key
    )
    short = sample_data.lorenz_rk4(
        3, temporal_horizon=20, num_warmup_steps=warmup, key=key
    )
    np.testing.assert_allclose(short, long[:, warmup:], rtol=1e-5, atol=1e-5)


def test_lorenz_matches_trainax_numbers():
    trj = np.asarray(
        sample_data.lorenz_rk4(4, temporal_horizon=50, num_warmup_steps=100, key=KEY)
    )
    np.testing.assert_allclose(
        trj[0, 0], [-8.637499809265137, -7.802988052368164, 28.25235366821289],
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        trj[2, 49], [7.34326696395874, 7.517597675323486, 25.373851776123047],
        rtol=1e-4,
    )


# -------------------------------------------------------------- bad inputs

_ADV = sample_data.advection_1d_periodic
_LOR = sample_data.lorenz_rk4


@pytest.mark.parametrize(
    "fn, kwargs, error, argument",
    [
        (_ADV, dict(num_points=0), ValueError, "num_points"),
        (_ADV, dict(num_samples=0), ValueError, "num_samples"),
        (_ADV, dict(temporal_horizon=0), ValueError, "temporal_horizon"),
        (_ADV, dict(highest_init_mode=0), ValueError, "highest_init_mode"),
        (
            _ADV,
            dict(num_points=8, highest_init_mode=5),
            ValueError,
            "highest_init_mode",
        ),
        (_ADV, dict(num_points=30.0), TypeError, "num_points"),
        (_ADV, dict(cfl="fast"), TypeError, "cfl"),
        (_ADV, dict(cfl=float("nan")), ValueError, "cfl"),
        (_LOR, dict(num_samples=-1), ValueError, "num_samples"),
        (_LOR, dict(temporal_horizon=0), ValueError, "temporal_horizon"),
        (_LOR, dict(num_warmup_steps=-1), ValueError, "num_warmup_steps"),
        (_LOR, dict(dt=0.0), ValueError, "dt"),
        (_LOR, dict(dt=-0.01), ValueError, "dt"),
        (_LOR, dict(init_std=-1.0), ValueError, "init_std"),
    ],
)
def test_bad_inputs_name_the_argument(fn, kwargs, error, argument):
    with pytest.raises(error, match=f"`{argument}`"):
        fn(key=KEY, **kwargs)


def test_aliasing_message_states_expected_and_actual():
    with pytest.raises(ValueError, match=r"at most `num_points // 2` = 4.*got 5"):
        _ADV(num_points=8, highest_init_mode=5, key=KEY)


@pytest.mark.parametrize("fn", [_ADV, _LOR])
def test_missing_key_is_a_clear_type_error(fn):
    with pytest.raises(TypeError, match="key"):
        fn()
    with pytest.raises(TypeError, match="key"):
        fn(key=0)


def test_lorenz_stepper_rejects_bad_dt():
    with pytest.raises(ValueError, match="`dt`"):
        sample_data.make_lorenz_stepper_rk4(0.0)


# --- coarse-grained Kuramoto-Sivashinsky ------------------------------------------------


def test_spectral_coarse_grain_samples_band_limited_fields_exactly():
    from trainax_fm.sample_data._kuramoto_sivashinsky import spectral_coarse_grain

    x = jnp.arange(32) / 32 * 2 * jnp.pi
    first, second = jnp.meshgrid(x, x, indexing="ij")
    smooth = jnp.sin(3 * first) * jnp.cos(2 * second) + 0.3 * jnp.cos(second)
    np.testing.assert_allclose(spectral_coarse_grain(smooth, 8, 2), smooth[::4, ::4], atol=1e-5)
    # a mode above the coarse band is removed entirely
    rough = jnp.cos(6 * first)
    np.testing.assert_allclose(spectral_coarse_grain(rough, 8, 2), 0.0, atol=1e-6)


def test_coarse_kuramoto_sivashinsky_2d():
    pytest.importorskip("exponax")
    kwargs = dict(fine_points=32, coarse_points=8, domain_extent=30.0, num_warmup_steps=3)
    data = tx.sample_data.coarse_kuramoto_sivashinsky(2, 4, key=jax.random.key(0), **kwargs)
    assert data.shape == (2, 4, 1, 8, 8)
    assert bool(jnp.all(jnp.isfinite(data))) and float(jnp.std(data)) > 0.1
    again = tx.sample_data.coarse_kuramoto_sivashinsky(2, 4, key=jax.random.key(0), **kwargs)
    np.testing.assert_array_equal(data, again)
    with pytest.raises(ValueError, match="coarse_points < fine_points"):
        tx.sample_data.coarse_kuramoto_sivashinsky(key=jax.random.key(0), coarse_points=64)
    with pytest.raises(TypeError, match="random key"):
        tx.sample_data.coarse_kuramoto_sivashinsky()
