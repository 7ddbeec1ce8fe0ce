"""3D fields `(C, N, N, N)` end to end.

- Configurations, driven by the registry's `CONFIGURATIONS_3D`: one case per family
  (rollout, diverted and mix chains with a reference stepper, residuum, teacher forcing,
  flow matching and the flow-map families) on a 4x4x4 grid; loss and gradient under
  `eqx.filter_jit` equal the hand-written reference, and `ConfigurationTrainer` trains
  it for two updates on 3D trajectories.
- Windows of 3D trajectories (both gather paths) equal brute-force slices; training
  from a `.npy` file on disk equals training from memory, dispatching 1 or 2 updates
  per call.
- Sobolev and spectral losses, and the spectral metrics, against numpy references
  written with explicit loops over the modes of a cubic grid.
- `tx.rollout` of a 3D stepper; every field network of the CLI's table on 3D states;
  the CLI trains and evaluates on its 3D exponax source (`exponax:diffusion_3d`) in a
  fresh process.
"""

import itertools
import json
import math
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_value_and_grad_close, value_and_grad
from registry import CONFIGURATIONS_3D, FIELDS_3D, FLOW_CONFIGURATIONS

import trainax_fm as tx
from trainax_fm.experiment import _toml
from trainax_fm.experiment._network import _FIELDS


# The rollout families (plain, with a reference stepper, residuum, forcing); every flow
# family is required through the registry's `FLOW_CONFIGURATIONS`, so a new one needs a
# 3D case too.
_ROLLOUT_FAMILIES = {
    "Supervised", "DivertedChain", "MixChainPostPhysics", "Residuum", "TeacherForcing"
}


def test_3d_cases_cover_every_family():
    covered = {case.cls.__name__ for case in CONFIGURATIONS_3D}
    assert _ROLLOUT_FAMILIES | FLOW_CONFIGURATIONS <= covered
    assert len({case.name for case in CONFIGURATIONS_3D}) == len(CONFIGURATIONS_3D)


@pytest.mark.parametrize("case", CONFIGURATIONS_3D, ids=repr)
def test_3d_configuration_matches_reference_and_trains(case, key):
    configuration = case.make()
    stepper, data = case.stepper(1), case.data()
    assert data.ndim == 6  # (batch, window, C, N, N, N)

    def loss(s):
        return configuration(s, data, key=key, **case.call_kwargs)

    jitted = value_and_grad(loss, stepper, jit=True)
    expected = value_and_grad(lambda s: case.reference(s, data, key), stepper, jit=True)
    assert jnp.shape(jitted[0]) == () and np.isfinite(float(jitted[0]))
    assert any(float(jnp.max(jnp.abs(g))) > 0.0 for g in jitted[1]), "zero gradient"
    assert_value_and_grad_close(jitted, expected, label="3D")

    trainer = tx.trainer.ConfigurationTrainer(
        FIELDS_3D,
        configuration,
        optimizer=optax.adam(1e-2),
        num_training_steps=2,
        batch_size=2,
        steps_per_dispatch=1,
        **case.call_kwargs,
    )
    result = trainer.train(stepper, key, spawn_tqdm=False)
    assert result.loss_history.shape == (2,)
    assert np.all(np.isfinite(result.loss_history))
    trained = jax.tree_util.tree_leaves(eqx.filter(result.stepper, eqx.is_array))
    initial = jax.tree_util.tree_leaves(eqx.filter(stepper, eqx.is_array))
    assert any(not np.array_equal(a, b) for a, b in zip(trained, initial))


# --- windows, disk, dispatch ---------------------------------------------------------


@pytest.mark.parametrize("flat_gather", [True, False], ids=["flat", "nd-slices"])
def test_3d_windows_equal_slices(flat_gather, monkeypatch):
    from trainax_fm.data import _windows

    if not flat_gather:  # the path of arrays too large for int32 flat offsets
        monkeypatch.setattr(_windows, "MAX_FLAT_GATHER_SIZE", 0)
    data = FIELDS_3D  # (3, 6, 1, 4, 4, 4)
    stacker = tx.TrajectorySubStacker(data, 3)
    assert stacker.num_total_samples == 3 * 4
    windows = np.asarray(stacker(jnp.arange(12)))
    assert windows.shape == (12, 3, 1, 4, 4, 4)
    for index in range(12):
        trajectory, start = divmod(index, 4)
        np.testing.assert_array_equal(
            windows[index], np.asarray(data)[trajectory, start : start + 3]
        )


def test_3d_training_from_disk_and_dispatch_agree(tmp_path, key):
    from registry import conv3d_stepper

    np.save(tmp_path / "three.npy", np.asarray(FIELDS_3D))
    on_disk = tx.data.open_trajectories(f"npy:{tmp_path / 'three.npy'}")

    def train(data, steps_per_dispatch):
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=4, batch_size=2,
            num_rollout_steps=2, steps_per_dispatch=steps_per_dispatch,
        )
        result = trainer.train(conv3d_stepper(0), key, spawn_tqdm=False)
        return eqx.filter(result.stepper, eqx.is_array), result.loss_history

    memory, disk, dispatched = (
        train(FIELDS_3D, 1), train(on_disk, 1), train(FIELDS_3D, 2)
    )
    assert bool(eqx.tree_equal(disk, memory))  # bit for bit
    np.testing.assert_allclose(dispatched[1], memory[1], rtol=1e-5, atol=1e-6)
    leaves = zip(*(jax.tree_util.tree_leaves(run[0]) for run in (dispatched, memory)))
    for a, b in leaves:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- losses and spectra against mode-by-mode numpy references -------------------------

_N = 6  # even: the Nyquist planes and the corner modes are exercised


def _fields(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _modes(n):
    """Every integer mode `(k1, k2, k3)` of an `n**3` grid with its FFT index."""
    k = np.fft.fftfreq(n, 1.0 / n).astype(int)
    for index in itertools.product(range(n), repeat=3):
        yield index, tuple(k[i] for i in index)


def _np_sobolev_3d(e, alpha, beta, extent):
    """`alpha*mean(e**2) + beta*mean(|grad e|**2)` with the gradient summed mode by
    mode: `|grad e|**2` averages to `sum_k |kappa|**2 |e_k|**2` (Parseval), where the
    Nyquist component of each axis has no derivative."""
    n = e.shape[-1]
    coefficients = np.fft.fftn(e.astype(np.float64), axes=(1, 2, 3)) / n**3
    gradient = 0.0
    for index, k in _modes(n):
        kappa = [0.0 if abs(ki) == n // 2 else 2 * math.pi * ki / extent for ki in k]
        power = np.sum(np.abs(coefficients[(slice(None), *index)]) ** 2)
        gradient += sum(c**2 for c in kappa) * power
    return alpha * np.mean(e.astype(np.float64) ** 2) + beta * gradient / e.shape[0]


def _np_band_powers_3d(x, y):
    """Per channel and band `round(|k|)`: `P_x`, `P_y` and `Re(cross)`, mode by mode."""
    n = x.shape[-1]
    fx = np.fft.fftn(x.astype(np.float64), axes=(1, 2, 3)) / n**3
    fy = np.fft.fftn(y.astype(np.float64), axes=(1, 2, 3)) / n**3
    num_bands = int(round(math.sqrt(3) * (n // 2))) + 1
    powers = np.zeros((3, x.shape[0], num_bands))
    for index, k in _modes(n):
        band = int(round(math.sqrt(sum(ki**2 for ki in k))))
        a, b = fx[(slice(None), *index)], fy[(slice(None), *index)]
        powers[0, :, band] += np.abs(a) ** 2
        powers[1, :, band] += np.abs(b) ** 2
        powers[2, :, band] += np.real(a * np.conj(b))
    return powers


def _np_amse_3d(x, y, eps=1e-12):
    px, py, cross = _np_band_powers_3d(x, y)
    amplitude = (np.sqrt(px + eps) - np.sqrt(py + eps)) ** 2
    coherence = cross / np.sqrt((px + eps) * (py + eps))
    return np.mean(np.sum(amplitude + 2 * np.maximum(px, py) * (1 - coherence), axis=1))


def _np_amplitude_3d(x, y, eps=1e-12):
    px, py, _ = _np_band_powers_3d(x, y)
    return np.mean(np.sum((np.sqrt(px + eps) - np.sqrt(py + eps)) ** 2, axis=1))


def test_3d_sobolev_and_spectral_losses_match_numpy():
    """Sobolev (spectral gradient, 2*pi and unit domains), AMSE and the spectral
    amplitude loss on a batch of two-channel 6x6x6 fields."""
    prediction = _fields(0, (2, 2, _N, _N, _N))
    target = _fields(1, (2, 2, _N, _N, _N))
    cases = [
        (tx.loss.SobolevLoss(0.5, 2.0), lambda p, t: _np_sobolev_3d(p - t, 0.5, 2.0, 2 * math.pi)),
        (
            tx.loss.SobolevLoss(1.0, 0.01, domain_extent=1.0),
            lambda p, t: _np_sobolev_3d(p - t, 1.0, 0.01, 1.0),
        ),
        (tx.loss.AMSELoss(), _np_amse_3d),
        (tx.loss.SpectralAmplitudeLoss(), _np_amplitude_3d),
    ]
    values = eqx.filter_jit(lambda losses, p, t: [loss(p, t) for loss in losses])(
        [loss for loss, _ in cases], prediction, target
    )
    for value, (loss, reference) in zip(values, cases):
        expected = np.mean([reference(prediction[b], target[b]) for b in range(2)])
        np.testing.assert_allclose(value, expected, rtol=2e-5, err_msg=repr(loss))


def test_3d_sobolev_loss_of_a_plane_wave():
    """`e = sin(x + 2y + 2z)` on the 2*pi torus: mean e**2 = 1/2, mean |grad e|**2 =
    9/2 spectrally; the sixth-order central difference sees per axis the modified
    wavenumber `(3/2 sin(kh) - 3/10 sin(2kh) + 1/30 sin(3kh)) / h`."""
    grid = 2 * np.pi * np.arange(8) / 8
    x, y, z = np.meshgrid(grid, grid, grid, indexing="ij")
    error = np.sin(x + 2 * y + 2 * z)[None, None].astype(np.float32)
    zero = np.zeros_like(error)
    spectral = tx.loss.SobolevLoss(0.0, 1.0)(error, zero)
    np.testing.assert_allclose(spectral, 4.5, rtol=1e-5)
    fd = tx.loss.SobolevLoss(1.0, 1.0, gradient="finite_difference", fd_order=6)
    h = 2 * np.pi / 8
    modified = [
        (1.5 * np.sin(k * h) - 0.3 * np.sin(2 * k * h) + np.sin(3 * k * h) / 30) / h
        for k in (1, 2, 2)
    ]
    expected = 0.5 + 0.5 * sum(m**2 for m in modified)
    np.testing.assert_allclose(fd(error, zero), expected, rtol=1e-5)


def _np_shell_spectrum(state):
    """Shell-summed power: entry `s` adds `sum_c |u_hat_{c,k}|**2` over the modes with
    `round(|k|) == s <= N//2` (the corner modes beyond the Nyquist shell are dropped)."""
    n = state.shape[-1]
    coefficients = np.fft.fftn(state.astype(np.float64), axes=(1, 2, 3)) / n**3
    spectrum = np.zeros(n // 2 + 1)
    for index, k in _modes(n):
        shell = int(round(math.sqrt(sum(ki**2 for ki in k))))
        if shell <= n // 2:
            spectrum[shell] += np.sum(np.abs(coefficients[(slice(None), *index)]) ** 2)
    return spectrum


def test_3d_energy_spectrum_and_spectral_metrics_match_numpy():
    reference = _fields(2, (3, 2, _N, _N, _N))  # (T, C, N, N, N)
    prediction = reference + 0.3 * _fields(3, reference.shape)
    spectra = jax.vmap(tx.metrics.energy_spectrum)(reference)
    assert spectra.shape == (3, _N // 2 + 1)
    for t in range(3):
        np.testing.assert_allclose(spectra[t], _np_shell_spectrum(reference[t]), rtol=1e-5)
    # spectral_error: per band sqrt(P_err / P_ref) from the same shell spectra.
    edges = (1, 2, _N // 2 + 1)
    errors = tx.metrics.spectral_error(prediction, reference, band_edges=edges)
    for t in range(3):
        error_power = _np_shell_spectrum(prediction[t] - reference[t])
        reference_power = _np_shell_spectrum(reference[t])
        expected = [
            math.sqrt(error_power[a:b].sum() / reference_power[a:b].sum())
            for a, b in zip(edges[:-1], edges[1:])
        ]
        np.testing.assert_allclose(errors[t], expected, rtol=1e-5)


def test_3d_h1_error_of_a_plane_wave():
    """Unit cube: reference sin(2 pi x), error 0.1 sin(2 pi (x + y + z)): the relative
    H1 error is 0.1 sqrt((1 + 3 (2 pi)**2) / (1 + (2 pi)**2))."""
    grid = np.arange(8) / 8
    x, y, z = np.meshgrid(grid, grid, grid, indexing="ij")
    reference = np.sin(2 * np.pi * x)[None, None].astype(np.float32)
    error = 0.1 * np.sin(2 * np.pi * (x + y + z))[None, None].astype(np.float32)
    expected = 0.1 * math.sqrt((1 + 3 * (2 * math.pi) ** 2) / (1 + (2 * math.pi) ** 2))
    np.testing.assert_allclose(
        tx.metrics.h1_error(reference + error, reference), [expected], rtol=1e-4
    )


# --- rollout, the CLI's networks and its 3D data source -------------------------------


def test_rollout_of_a_3d_stepper():
    """`tx.rollout` equals a Python loop of the stepper, also batched and with two input
    steps stacked on channels."""
    from registry import conv3d_stepper

    stepper = conv3d_stepper(3)
    ic = jnp.asarray(_fields(4, (1, 4, 4, 4)))
    expected, state = [], ic
    for _ in range(3):
        state = stepper(state)
        expected.append(state)
    expected = jnp.stack(expected)
    rolled = tx.rollout(stepper, ic, 3)
    assert rolled.shape == (3, 1, 4, 4, 4)
    np.testing.assert_allclose(rolled, expected, rtol=1e-5, atol=1e-6)
    batched = tx.rollout(stepper, jnp.stack([ic, 2 * ic]), 3, batched=True, include_init=True)
    assert batched.shape == (2, 4, 1, 4, 4, 4)
    np.testing.assert_allclose(batched[0, 1:], expected, rtol=1e-5, atol=1e-6)
    two_step = conv3d_stepper(5, in_channels=2)
    history = jnp.stack([ic, 0.5 * ic])  # (H, C, N, N, N)
    rolled = tx.rollout(two_step, history, 2, num_input_steps=2)
    first = two_step(jnp.concatenate([ic, 0.5 * ic]))
    second = two_step(jnp.concatenate([0.5 * ic, first]))
    np.testing.assert_allclose(rolled, jnp.stack([first, second]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", [kind for kind in _FIELDS if kind != "MLP"])
def test_cli_networks_map_3d_states(kind):
    """Every field architecture of the CLI's network table maps `(C, N, N, N)` to the
    same shape (abstract evaluation: only shapes matter, no compile)."""
    spec = ";".join([kind] + ["2"] * len(_FIELDS[kind]) + ["relu"])
    network = eqx.filter_eval_shape(
        tx.experiment.build_network, spec, in_channels=2, out_channels=2,
        num_spatial_dims=3, num_points=8, key=jax.random.key(0),
    )
    state = jax.ShapeDtypeStruct((2, 8, 8, 8), jnp.float32)
    assert eqx.filter_eval_shape(lambda m, x: m(x), network, state).shape == (2, 8, 8, 8)


def test_cli_trains_and_evaluates_on_3d_diffusion(tmp_path):
    """`exponax:diffusion_3d` on an 8**3 grid: a few updates of a 3D ConvNet and the
    evaluation, in a fresh process (the command line as a user runs it)."""
    pytest.importorskip("exponax")
    config = {
        "name": "three",
        "data": {"source": "exponax:diffusion_3d", "num_points": 8, "ic_cutoff": 2,
                 "num_train_samples": 3, "num_test_samples": 2, "temporal_horizon": 4},
        "network": {"spec": "Conv;4;1;relu"},
        "training": {"method": "sup;2", "num_training_steps": 4, "batch_size": 2,
                     "checkpoint_every": 4},
        "evaluation": {"num_rollout_steps": 3, "nrmse_aggregate_steps": 3},
    }
    path = tmp_path / "three.toml"
    path.write_text(_toml.dumps(config))
    results = tmp_path / "results"
    # `train` evaluates the trained network with the same code as `eval`, so one fresh
    # process covers the 3D path (a second one for `eval` would only add its start-up).
    done = subprocess.run(
        [sys.executable, "-m", "trainax_fm", "train", str(path), "--results", str(results),
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = results / "three"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and len(metrics["nrmse"]) == 3
    assert all(np.isfinite(metrics["nrmse"]))
    for name in ("snapshots_3d.png", "network.eqx"):
        assert (run / name).is_file(), name
    saved = tx.experiment.load_config(run / "config.toml")
    dataset, _ = tx.experiment.load_data(saved)
    assert dataset.train.shape == (3, 4, 1, 8, 8, 8)
    # The reference stepper (exponax) reproduces the data: `div`/`mix`/`res` can use it.
    np.testing.assert_allclose(
        jax.vmap(dataset.ref_stepper)(dataset.train[:, 0]), dataset.train[:, 1], atol=1e-5
    )
