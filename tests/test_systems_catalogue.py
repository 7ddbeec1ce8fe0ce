"""The system catalogue (`trainax_fm.systems`): systems, integration, perturbations,
skew products, the validity filter, channel selection, catalogues on disk and their
split, the dysts adaptor (with a fake dysts) and the bad inputs.

Integration tolerances are loosened (rtol 1e-6) and horizons kept short so the file
runs in seconds; every reference below is written out by hand.
"""

import json
import math
import sys
import types

import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm import systems as S
from trainax_fm.data import DiskTrajectories

FAST = {"rtol": 1e-6, "atol": 1e-8}


def _system(name, field, parameters, initial, dt):
    return S.ODESystem(name, field, parameters, initial, dt)


VAN_DER_POL = _system(
    "VanDerPol",
    lambda x, p: np.stack([x[1], p["mu"] * (1 - x[0] ** 2) * x[1] - x[0]]),
    {"mu": 1.0},
    [2.0, 0.0],
    0.2,
)
HOPF = _system(  # Hopf normal form above the bifurcation: the unit circle attracts
    "Hopf",
    lambda x, p: np.stack(
        [
            p["mu"] * x[0] - x[1] - x[0] * (x[0] ** 2 + x[1] ** 2),
            x[0] + p["mu"] * x[1] - x[1] * (x[0] ** 2 + x[1] ** 2),
        ]
    ),
    {"mu": 1.0},
    [0.5, 0.0],
    0.2,
)
DAMPED = _system(  # a stable focus: every trajectory ends at the origin
    "Damped",
    lambda x, p: np.stack([x[1], -x[0] - p["g"] * x[1], -x[2]]),
    {"g": 1.0},
    [1.0, 0.0, 1.0],
    0.1,
)
BLOWUP = _system(  # x' = x^2 reaches infinity at t = 1
    "Blowup", lambda x, p: np.stack([x[0] ** 2, -x[1]]), {}, [1.0, 1.0], 0.1
)


# --- systems and integration -------------------------------------------------------


def test_builtin_systems_are_chaotic_odes_with_reference_data():
    names = S.builtin_system_names()
    assert 6 <= len(names) <= 8 and "Lorenz63" in names
    for name in names:
        system = S.get_system(name)
        assert system.name == name and system.base_systems == (name,)
        assert system.dimension >= 3 and system.dt > 0
        x = system.initial_condition
        assert system(x).shape == x.shape
        batch = np.stack([x, 2 * x], axis=1)  # vectorised over a trailing axis
        np.testing.assert_allclose(system(batch)[:, 1], system(2 * x))


def test_lorenz_vector_field_and_integration_match_hand_formulas():
    lorenz = S.get_system("Lorenz63")
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(lorenz(x), [10 * (2 - 1), 1 * (28 - 3) - 2, 1 * 2 - 8 / 3 * 3])
    # one sample dt later against a fine classic RK4 written here
    y = np.array(lorenz.initial_condition)
    h = lorenz.dt / 200
    for _ in range(200):
        k1 = lorenz(y)
        k2 = lorenz(y + h / 2 * k1)
        k3 = lorenz(y + h / 2 * k2)
        k4 = lorenz(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    trajectory = S.integrate_system(lorenz, None, 2)
    np.testing.assert_allclose(trajectory[0], lorenz.initial_condition)
    np.testing.assert_allclose(trajectory[1], y, rtol=1e-7, atol=1e-7)
    # the transient is discarded: sample 0 is the state after 3 samples
    later = S.integrate_system(lorenz, None, 2, num_transient_steps=3)
    np.testing.assert_allclose(later[0], S.integrate_system(lorenz, None, 4)[3], rtol=1e-6)


def test_diverging_system_is_stopped_at_the_bound():
    trajectory = S.integrate_system(BLOWUP, None, 20, bound=1e3)
    assert np.isinf(trajectory[-1]).all()
    finite = trajectory[np.isfinite(trajectory).all(axis=1)]
    assert 1 <= len(finite) < 20 and np.abs(finite).max() <= 1e3


def test_on_attractor_initial_conditions_are_samples_of_the_reference_trajectory():
    lorenz = S.get_system("Lorenz63")
    initial, reference = S.on_attractor_initial_conditions(
        lorenz,
        5,
        rng=np.random.default_rng(0),
        num_transient_steps=50,
        num_reference_steps=100,
        **FAST,
    )
    assert initial.shape == (5, 3) and reference.shape == (100, 3)
    rows = [np.flatnonzero((reference == row).all(axis=1)) for row in initial]
    assert all(len(r) == 1 for r in rows) and len({int(r[0]) for r in rows}) == 5
    again, _ = S.on_attractor_initial_conditions(
        lorenz,
        5,
        rng=np.random.default_rng(0),
        num_transient_steps=50,
        num_reference_steps=100,
        **FAST,
    )
    np.testing.assert_array_equal(initial, again)


def test_ode_system_rejects_bad_descriptions():
    field = lambda x, p: x  # noqa: E731
    with pytest.raises(TypeError, match="vector_field"):
        S.ODESystem("A", 3, {}, [1.0], 0.1)
    with pytest.raises(ValueError, match="initial_condition"):
        S.ODESystem("A", field, {}, [[1.0]], 0.1)
    with pytest.raises(ValueError, match="dt"):
        S.ODESystem("A", field, {}, [1.0], 0.0)
    with pytest.raises(ValueError, match="finite"):
        S.ODESystem("A", field, {"a": math.nan}, [1.0], 0.1)
    with pytest.raises(ValueError, match="lyapunov_exponent"):
        S.ODESystem("A", field, {}, [1.0], 0.1, lyapunov_exponent=-1.0)
    lorenz = S.get_system("Lorenz63")
    with pytest.raises(ValueError, match="no parameter"):
        lorenz.with_parameters({"sgima": 1.0})
    with pytest.raises(AttributeError, match="frozen"):
        lorenz.dt = 1.0
    changed = lorenz.with_parameters({"rho": 30.0})
    assert changed.parameters["rho"] == 30.0 and lorenz.parameters["rho"] == 28.0
    assert changed.lyapunov_exponent is None and lorenz.lyapunov_exponent is not None


# --- parameter perturbations and skew products --------------------------------------


def test_perturbation_follows_its_formula_for_a_fixed_seed():
    parameters = {"b": -2.0, "a": 3.0, "v": np.array([1.0, 0.0]), "k": 5.0}
    out = S.perturb_parameters(
        parameters,
        rng=np.random.default_rng(7),
        scale=0.5,
        variance_floor=1e-4,
        sign_match_probability=0.5,
        keep=("k",),
    )
    rng = np.random.default_rng(7)
    expected = {"k": 5.0}
    for name in ("a", "b", "v"):  # sorted order; "k" is kept and draws nothing
        p = np.asarray(parameters[name], dtype=float)
        z = rng.standard_normal(p.shape)
        delta = np.sqrt(0.25 * p**2 + 1e-4) * z
        if rng.random() < 0.5:
            delta = np.sign(p) * np.abs(delta)
        expected[name] = p + delta
    assert set(out) == set(parameters)
    for name in parameters:
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-15)
    assert isinstance(out["a"], float)


def test_skew_product_vector_field_matches_the_hand_formula():
    lorenz, rossler = S.get_system("Lorenz63"), S.get_system("Rossler")
    skew = S.skew_product(lorenz, rossler, coupling=0.3)
    assert skew.name == "Lorenz63_Rossler" and skew.dimension == 6
    assert skew.base_systems == ("Lorenz63", "Rossler")
    assert skew.parameters["coupling"] == 0.3 and skew.parameters["response.c"] == 5.7
    x = np.array([1.0, -2.0, 3.0, 0.5, 0.25, -1.5])
    u, v, w = x[:3]
    a, b, c = x[3:]
    f_d = np.array([10 * (v - u), u * (28 - w) - v, u * v - 8 / 3 * w])
    f_r = np.array([-b - c, a + 0.2 * b, 0.2 + c * (a - 5.7)])
    np.testing.assert_allclose(skew(x), np.concatenate([f_d, f_r + 0.3 * f_d]))
    # a driver of higher dimension, an explicit map M
    ring = S.get_system("Lorenz96_5")
    m = np.arange(15.0).reshape(3, 5) / 10
    skew = S.skew_product(ring, lorenz, coupling=2.0, coupling_map=m)
    y = np.linspace(-1, 1, 8)
    ring_field = (np.roll(y[:5], -1) - np.roll(y[:5], 2)) * np.roll(y[:5], 1) - y[:5] + 8
    np.testing.assert_allclose(
        skew(y), np.concatenate([ring_field, lorenz(y[5:]) + 2 * m @ ring_field])
    )
    # the perturbed parameters reach the parts
    perturbed = skew.with_parameters({"response.rho": 10.0})
    np.testing.assert_allclose(
        perturbed(y)[5:], lorenz.with_parameters({"rho": 10.0})(y[5:]) + 2 * m @ ring_field
    )
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        S.skew_product(ring, lorenz, coupling=1.0, coupling_map=np.ones((5, 3)))


def test_default_coupling_is_the_ratio_of_vector_field_rms():
    lorenz, sprott = S.get_system("Lorenz63"), S.get_system("SprottB")
    kappa = S.coupling_strength(lorenz, sprott, num_time_steps=200, num_transient_steps=50)
    rms = []
    for system in (lorenz, sprott):
        states = S.integrate_system(system, None, 200, num_transient_steps=50)
        speeds = [np.sum(system(state) ** 2) for state in states]
        rms.append(np.sqrt(np.mean(speeds)))
    np.testing.assert_allclose(kappa, rms[1] / rms[0], rtol=1e-12)
    np.testing.assert_allclose(S.identity_coupling_map(2, 3), [[1, 0, 0], [0, 1, 0]])


# --- the validity filter -------------------------------------------------------------


def _zero_one_reference(phi, frequencies, cutoff):
    """The 0-1 test, loop by loop (Gottwald and Melbourne 2009, modified version)."""
    n_total = len(phi)
    n_cut = int(cutoff * n_total)
    ks = []
    for c in frequencies:
        p, q = [0.0], [0.0]
        for j in range(1, n_total + 1):
            p.append(p[-1] + phi[j - 1] * math.cos(j * c))
            q.append(q[-1] + phi[j - 1] * math.sin(j * c))
        d = []
        for n in range(1, n_cut + 1):
            total = 0.0
            for j in range(1, n_total - n_cut + 1):
                total += (p[j + n] - p[j]) ** 2 + (q[j + n] - q[j]) ** 2
            mean_phi = sum(phi) / n_total
            d.append(
                total / (n_total - n_cut) - mean_phi**2 * (1 - math.cos(n * c)) / (1 - math.cos(c))
            )
        ks.append(np.corrcoef(np.arange(1, n_cut + 1), d)[0, 1])
    return float(np.median(ks))


def test_zero_one_test_matches_a_hand_written_reference():
    logistic = [0.3]
    for _ in range(299):
        logistic.append(3.97 * logistic[-1] * (1 - logistic[-1]))
    periodic = [math.sin(0.9 * j) + 0.5 * math.cos(2.1 * j) for j in range(300)]
    frequencies = np.linspace(math.pi / 5, 4 * math.pi / 5, 7)
    for series in (logistic, periodic):
        expected = _zero_one_reference(series, frequencies, 0.1)
        got = S.zero_one_test(np.array(series), num_frequencies=7)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert S.zero_one_test(np.array(logistic)) > 0.9
    assert abs(S.zero_one_test(np.array(periodic))) < 0.2


def test_filter_accepts_lorenz_and_rejects_fixed_point_limit_cycles_divergence():
    check = S.ValidityFilter()

    def run(system, num_time_steps):
        return S.integrate_system(system, None, num_time_steps, num_transient_steps=200, **FAST)

    assert check(run(S.get_system("Lorenz63"), 1500)) is None
    assert check(run(DAMPED, 400)) == "fixed_point"
    assert check(run(VAN_DER_POL, 1500)) == "not_chaotic"
    assert check(run(HOPF, 1000)) in ("not_chaotic", "few_spectral_peaks")
    assert check(S.integrate_system(BLOWUP, None, 100, bound=1e3)) == "unbounded"
    nan = np.ones((100, 2))
    nan[50, 1] = np.nan
    assert check(nan) == "non_finite"


def test_filter_rejects_lines_drifts_and_few_peaks():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 500)
    noise = rng.standard_normal((500, 1))
    line = np.concatenate([noise, 2 * noise + 1e-3 * rng.standard_normal((500, 1))], axis=1)
    check = S.ValidityFilter()
    assert check(line) == "linear"
    drift = rng.standard_normal((500, 2)) + 10 * t[:, None]
    assert check(drift) == "non_stationary"
    loose = S.ValidityFilter(chaos_threshold=1e-9, min_spectral_peaks=3)
    tone = np.stack([np.sin(40 * np.pi * t), np.cos(40 * np.pi * t)], axis=1)
    assert loose(tone) in ("not_chaotic", "few_spectral_peaks")
    with pytest.raises(ValueError, match="chaos_threshold"):
        S.ValidityFilter(chaos_threshold=1.5)
    with pytest.raises(ValueError, match="T >= 40"):
        check(np.ones((10, 3)))
    assert set(S.REJECTION_REASONS) >= {"non_finite", "unbounded", "fixed_point", "not_chaotic"}


# --- channels ------------------------------------------------------------------------


def test_channel_selection_subsets_and_delay_coordinates():
    chosen = S.channel_selection(5, 3, rng=np.random.default_rng(1))
    assert len(chosen) == 3 and all(delay == 0 for _, delay in chosen)
    coordinates = [c for c, _ in chosen]
    assert coordinates == sorted(set(coordinates)) and max(coordinates) < 5
    assert chosen == S.channel_selection(5, 3, rng=np.random.default_rng(1))
    assert S.channel_selection(3, 3) == ((0, 0), (1, 0), (2, 0))
    delays = S.channel_selection(2, 5, delay_steps=4)
    assert delays == ((0, 0), (1, 0), (0, 4), (1, 4), (0, 8))
    trajectory = np.arange(24.0).reshape(12, 2)  # (T + 8, D) with T = 4
    out = S.apply_channel_selection(trajectory, delays)
    expected = np.stack(
        [
            trajectory[8:, 0],
            trajectory[8:, 1],
            trajectory[4:8, 0],
            trajectory[4:8, 1],
            trajectory[0:4, 0],
        ],
        axis=1,
    )
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(TypeError, match="rng"):
        S.channel_selection(5, 3)


# --- catalogues ----------------------------------------------------------------------

CATALOGUE = dict(
    num_trajectories_per_system=2,
    num_time_steps=32,
    num_perturbations=1,
    skew_pairs=[("Lorenz63", "Chen")],
    held_out=["Chen"],
    num_reference_steps=800,
    num_transient_steps=200,
    **FAST,
)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return S.generate_catalogue(
        ["Lorenz63", "Chen", "Lorenz96_5"], tmp_path_factory.mktemp("a"), seed=3, **CATALOGUE
    )


def test_catalogue_files_metadata_and_views(catalogue):
    data = np.load(catalogue.trajectories_path)
    assert data.dtype == np.float32 and data.shape == catalogue.shape
    assert data.shape[1:] == (32, 3) and np.all(np.isfinite(data))
    metadata = json.loads((catalogue.path / "catalogue.json").read_text())
    assert len(metadata["trajectories"]) == data.shape[0]
    assert set(metadata["rejections"]) == set(S.REJECTION_REASONS)
    for entry in catalogue.trajectories:
        system = entry["system"]
        assert set(entry) >= {"system", "base_systems", "parameters", "dt", "channels", "split"}
        assert len(entry["channels"]) == 3
        if system == "Lorenz96_5":  # a seeded subset of its five coordinates
            assert all(delay == 0 for _, delay in entry["channels"])
        if system == "Lorenz63_Chen":
            assert entry["base_systems"] == ["Lorenz63", "Chen"]
    # each stored trajectory is the recorded system's trajectory from its first state
    first = catalogue.entries("train")[0]
    assert first["system"] == "Lorenz63" and first["perturbation"] == 0
    again = S.integrate_system(S.get_system("Lorenz63"), data[0, 0].astype(float), 4, **FAST)
    np.testing.assert_allclose(data[0, :4], again, rtol=1e-3, atol=1e-3)
    # counted rejections add up: each dropped variant is counted once
    per_system = {}
    for entry in catalogue.trajectories:
        per_system.setdefault(entry["system"], set()).add(entry["perturbation"])
    assert len(per_system) == 4  # three systems and one skew product, two variants each
    accepted = sum(len(variants) for variants in per_system.values())
    assert sum(catalogue.rejections.values()) == 4 * 2 - accepted
    by_system = {k: sum(v.values()) for k, v in catalogue.rejections_by_system.items()}
    assert sum(by_system.values()) == 4 * 2 - accepted
    assert all(2 - len(per_system[k]) == v for k, v in by_system.items())
    # the views
    train = catalogue.open("train")
    assert isinstance(train, DiskTrajectories)
    assert train.shape == (catalogue.num_trajectories("train"), 32, 3)
    np.testing.assert_array_equal(train.read(), catalogue.load("train"))
    np.testing.assert_array_equal(
        np.concatenate([catalogue.load("train"), catalogue.load("test")]), data
    )
    loaded = S.load_catalogue(catalogue.path)
    assert loaded.trajectories == catalogue.trajectories and loaded.shape == catalogue.shape
    assert tx.systems.Catalogue is S.Catalogue


def test_split_holds_out_base_systems_also_inside_skew_products(catalogue):
    for entry in catalogue.trajectories:
        uses_chen = "Chen" in entry["base_systems"]
        assert entry["split"] == ("test" if uses_chen else "train")
    train = catalogue.entries("train")
    assert train and all("Chen" not in e["base_systems"] for e in train)
    splits = catalogue.splits
    assert list(splits) == sorted(splits, key=lambda s: s != "train")  # train block first
    rows = [("Lorenz63",), ("Rossler",), ("Lorenz63", "Rossler"), ("Chen", "Lorenz63"), ("Chen",)]
    assert S.split_by_base_system(rows, ["Rossler"]) == ("train", "test", "test", "train", "train")
    assert S.split_by_base_system(rows, ["Lorenz63"]) == ("test", "train", "test", "test", "train")
    assert S.split_by_base_system(rows, []) == ("train",) * 5
    with pytest.raises(ValueError, match="Did you mean Rossler"):
        S.split_by_base_system(rows, ["Rosler"])
    with pytest.raises(TypeError, match=r"\('Chen',\)"):
        S.split_by_base_system(rows, "Chen")


SMALL = {**CATALOGUE, "skew_pairs": [], "held_out": [], "num_channels": 4}


def test_same_seed_writes_byte_identical_files(tmp_path):
    # one system, its default and one perturbed variant, with a delay channel
    first = S.generate_catalogue(["Lorenz63"], tmp_path / "1", seed=5, **SMALL)
    again = S.generate_catalogue(["Lorenz63"], tmp_path / "2", seed=5, **SMALL)
    for name in ("trajectories.npy", "catalogue.json"):
        assert (again.path / name).read_bytes() == (first.path / name).read_bytes()
    assert first.trajectories[0]["channels"] == [[0, 0], [1, 0], [2, 0], [0, 5]]
    other = S.generate_catalogue(["Lorenz63"], tmp_path / "3", seed=6, **SMALL)
    assert not np.array_equal(other.load(), first.load())


@pytest.mark.slow  # two spawned processes import JAX: about 20 s on two busy cores
def test_worker_processes_write_the_same_files(tmp_path):
    serial = S.generate_catalogue(["Lorenz63"], tmp_path / "1", seed=5, **SMALL)
    parallel = S.generate_catalogue(["Lorenz63"], tmp_path / "2", seed=5, num_workers=2, **SMALL)
    for name in ("trajectories.npy", "catalogue.json"):
        assert (parallel.path / name).read_bytes() == (serial.path / name).read_bytes()


def test_worker_processes_need_picklable_systems(tmp_path):
    with pytest.raises(TypeError, match="'Damped' cannot be pickled"):
        S.generate_catalogue(["Lorenz63", DAMPED], tmp_path, seed=5, num_workers=2, **SMALL)
    with pytest.raises(TypeError, match="num_workers"):
        S.generate_catalogue(["Lorenz63"], tmp_path, seed=5, num_workers=0.5, **SMALL)


def test_a_system_that_never_passes_names_itself_and_writes_nothing(tmp_path):
    target = tmp_path / "never"
    with pytest.raises(ValueError, match=r"'Damped' never passed.*fixed_point: 3"):
        S.generate_catalogue(
            ["Lorenz63", DAMPED],
            target,
            seed=0,
            **{**CATALOGUE, "num_perturbations": 2, "skew_pairs": [], "held_out": []},
        )
    assert not target.exists()


def test_bad_arguments_fail_before_any_work(tmp_path):
    target = tmp_path / "bad"
    base = {**CATALOGUE, "skew_pairs": [], "held_out": []}
    with pytest.raises(ValueError, match="Did you mean Lorenz63"):
        S.generate_catalogue(["Lorenz36"], target, seed=0, **base)
    with pytest.raises(ValueError, match="skew_pairs.*Did you mean Rossler"):
        S.generate_catalogue(
            ["Lorenz63"], target, seed=0, **{**base, "skew_pairs": [("Lorenz63", "Rosler")]}
        )
    with pytest.raises(ValueError, match="held-out system 'Rossler'"):
        S.generate_catalogue(
            ["Lorenz63", "Chen"], target, seed=0, **{**base, "held_out": ["Rossler"]}
        )
    with pytest.raises(ValueError, match="nothing is left to train"):
        S.generate_catalogue(["Lorenz63"], target, seed=0, **{**base, "held_out": ["Lorenz63"]})
    with pytest.raises(ValueError, match="num_time_steps"):
        S.generate_catalogue(["Lorenz63"], target, seed=0, **{**base, "num_time_steps": 1})
    with pytest.raises(ValueError, match="num_trajectories_per_system"):
        S.generate_catalogue(
            ["Lorenz63"], target, seed=0, **{**base, "num_trajectories_per_system": 5000}
        )
    with pytest.raises(ValueError, match="more than once"):
        S.generate_catalogue(["Lorenz63", "Lorenz63"], target, seed=0, **base)
    with pytest.raises(TypeError, match="wrap a single system"):
        S.generate_catalogue("Lorenz63", target, seed=0, **base)
    with pytest.raises(ValueError, match="perturbation_scale"):
        S.generate_catalogue(["Lorenz63"], target, seed=0, **{**base, "perturbation_scale": -1.0})
    with pytest.raises(ValueError, match="rtol"):
        S.generate_catalogue(["Lorenz63"], target, seed=0, **{**base, "rtol": 0.0})
    with pytest.raises(TypeError, match="seed"):
        S.generate_catalogue(["Lorenz63"], target, seed=1.5, **base)
    with pytest.raises(ValueError, match="unknown system 'Lorenz36'.*Did you mean Lorenz63"):
        S.get_system("Lorenz36")
    assert not target.exists()
    with pytest.raises(FileNotFoundError, match="generate_catalogue"):
        S.load_catalogue(tmp_path)


def test_load_catalogue_notices_files_that_do_not_belong_together(catalogue, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(catalogue.path, copy)
    data = np.load(copy / "trajectories.npy")
    data[0, 0, 0] += 1
    np.save(copy / "trajectories.npy", data)
    with pytest.raises(ValueError, match="SHA-256"):
        S.load_catalogue(copy)


# --- dysts, through a fake module ------------------------------------------------------


class _FakeLorenz:
    """The shape of a dysts flow: parameters, ic, period, dt, rhs(X, t)."""

    def __init__(self, parameters=None):
        self.params = dict(parameters or {"beta": 2.667, "rho": 28.0, "sigma": 10.0})
        self.ic = np.array([-9.8, -15.0, 20.5])
        self.period = 1.5
        self.dt = 0.0003
        self.maximum_lyapunov_estimated = 0.89

    def rhs(self, X, t):
        x, y, z = X
        p = self.params
        return np.array([p["sigma"] * (y - x), x * (p["rho"] - z) - y, x * y - p["beta"] * z])


@pytest.fixture
def fake_dysts(monkeypatch):
    package = types.ModuleType("dysts")
    flows = types.ModuleType("dysts.flows")
    systems = types.ModuleType("dysts.systems")
    flows.Lorenz = _FakeLorenz
    systems.get_attractor_list = lambda kind: ["Lorenz"]
    package.flows, package.systems = flows, systems
    for name, module in (("dysts", package), ("dysts.flows", flows), ("dysts.systems", systems)):
        monkeypatch.setitem(sys.modules, name, module)
    return package


def test_dysts_systems_by_name_through_the_adaptor(fake_dysts):
    system = S.get_system("Lorenz")
    assert system.dimension == 3 and system.lyapunov_exponent == 0.89
    np.testing.assert_allclose(system.dt, 1.5 / 30)
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(system(x), [10.0, 23.0, 2 - 2.667 * 3])
    perturbed = system.with_parameters({"rho": 10.0})
    np.testing.assert_allclose(perturbed(x), [10.0, 5.0, 2 - 2.667 * 3])
    trajectory = S.integrate_system(system, None, 5, **FAST)
    builtin = S.get_system("Lorenz63").with_parameters({"beta": 2.667})
    np.testing.assert_allclose(
        trajectory,
        S.integrate_system(builtin, system.initial_condition, 5, dt=system.dt, **FAST),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="Did you mean Lorenz"):
        S.get_system("Lorenx")
    with pytest.raises(ValueError, match="Did you mean Lorenz"):
        S.dysts_system("Lorenx")


def test_without_dysts_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dysts", None)
    with pytest.raises(ValueError, match=r"pip install 'trainax_fm\[dysts\]'"):
        S.get_system("Aizawa")
    with pytest.raises(ImportError, match="dysts"):
        S.dysts_system("Aizawa")


def test_systems_filters_and_catalogues_pickle(catalogue):
    import pickle

    skew = S.skew_product(S.get_system("Lorenz63"), S.get_system("Rossler"), coupling=0.5)
    for system in (S.get_system("Chen"), skew):
        copy = pickle.loads(pickle.dumps(system))
        x = np.linspace(1, 2, system.dimension)
        np.testing.assert_array_equal(copy(x), system(x))
        assert copy.base_systems == system.base_systems and copy.dt == system.dt
    check = S.ValidityFilter(bound=10.0)
    assert pickle.loads(pickle.dumps(check)).as_dict() == check.as_dict()
    copy = pickle.loads(pickle.dumps(catalogue))
    assert copy.trajectories == catalogue.trajectories and copy.path == catalogue.path


def test_system_labels_index_the_system_names(catalogue):
    names, labels = catalogue.system_labels()
    assert names == catalogue.system_names and labels.dtype == np.int32
    assert [names[i] for i in labels] == list(catalogue.systems)
    test_names, test_labels = catalogue.system_labels("test")
    assert set(test_names) == {"Chen", "Lorenz63_Chen"}
    assert len(test_labels) == catalogue.num_trajectories("test")
    with pytest.raises(ValueError, match="split"):
        catalogue.system_labels("validation")


@pytest.mark.slow  # seven reference trajectories at the catalogue's defaults, ~20 s
@pytest.mark.parametrize("name", S.builtin_system_names())
def test_every_builtin_system_passes_the_default_filter(name):
    _, reference = S.on_attractor_initial_conditions(
        S.get_system(name), 1, rng=np.random.default_rng(0)
    )
    assert S.ValidityFilter()(reference) is None
