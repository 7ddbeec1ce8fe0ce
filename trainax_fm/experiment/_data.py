"""Data sources of an experiment: built-in generators, exponax scenarios and files.

`[data] source` selects one of

- `"advection"`: exact periodic 1D linear advection
    ([`trainax_fm.sample_data.advection_1d_periodic`][]); extra keys `num_points`,
    `cfl`, `highest_init_mode`. Reference stepper: the exact Fourier shift.
- `"lorenz"`: the Lorenz-63 ODE with RK4 ([`trainax_fm.sample_data.lorenz_rk4`][]),
    states `(3,)`; extra keys `dt`, `num_warmup_steps`. Reference: the RK4 step.
- `"lorenz96"`: the chaotic Lorenz-96 ring with RK4
    ([`trainax_fm.sample_data.lorenz96_rk4`][]), states `(1, num_points)` (a periodic
    field); extra keys `num_points`, `dt`, `forcing`, `num_warmup_steps`. Reference:
    the RK4 step.
- `"exponax:<scenario>"` with `<scenario>` one of `diffusion_1d`, `diffusion_2d`,
    `diffusion_3d` (a 16x16x16 grid by default: a small 3D scenario), `burgers_1d`,
    `ks_1d` (conservative Kuramoto-Sivashinsky), `ks_combustion_1d`
    (its combustion/gradient form): random truncated-Fourier initial conditions
    (`exponax.ic.RandomTruncatedFourierSeries`, scaled to max 1) stepped by the
    exponax ETDRK stepper, which is also the reference; extra keys `num_points`,
    `dt`, `domain_extent`, `num_warmup_steps`, `ic_cutoff` (and `diffusivity` for
    diffusion and Burgers). Needs `pip install 'trainax_fm[pde]'`.
- `"exponax:<Stepper>"` with `<Stepper>` any stepper class of `exponax.stepper`,
    `exponax.stepper.generic` or `exponax.stepper.reaction` (e.g.
    `KuramotoSivashinskyConservative`, `NavierStokesVorticity`, `GrayScott`,
    `GeneralNonlinearStepper`): the same generation with that stepper; keys
    `num_spatial_dims`, `num_points`, `dt`, `domain_extent`, `num_warmup_steps`,
    `ic_cutoff`, and every keyword parameter of the stepper as a key of `[data]`
    (typed from its default: numbers, booleans, lists of numbers). Multi-channel
    steppers get one random initial condition per channel.
- `"file:<path>"`: trajectories `(S, T, C, *spatial)` from a `.npy` file or a `.npz`
    archive (the array `trajectories`, or its only array); relative paths are relative
    to the configuration file. Extra key `test_source = "file:<path>"` for a separate
    test file; otherwise the last `num_test_samples` trajectories are held out. Files
    provide no reference stepper, so `div`, `mix` and `res` cannot train on them.
- `"npy:<path>"`, `"hdf5:<path>#<data set>"`, `"zarr:<path>"` or
    `"zarr:<path>#<array>"`: trajectories that stay on disk
    ([`trainax_fm.data.DiskTrajectories`][]); training reads each minibatch from the
    file, only the test trajectories are loaded into memory. Same keys and rules as
    `file:` (`test_source` may be any file source); `num_seeds` must be 1 and
    `training.steps_per_dispatch` 1. Append `;channels_last` for an array stored
    `(S, T, *spatial, C)` (e.g. `"npy:u.npy;channels_last"`).
- `"well:<path>"` or `"well:<path>#<field>,<field>"`: an HDF5 file in the_well's
    per-field layout (`t0_fields/NAME`, `t1_fields/NAME`, `t2_fields/NAME`), the chosen
    fields stacked into channels (default: every `t0_fields`, then `t1_fields` field),
    read from disk like the sources above.

For the generated sources the residuum of the `res` method is
`u_next - P(u_prev)` with `P` the reference stepper. Train trajectories have
`temporal_horizon` snapshots (initial condition included); test trajectories have
`evaluation.num_rollout_steps + 1`. Train and test data come from two keys split off
`jax.random.PRNGKey(data.seed)`, so they do not depend on the top-level `seed`.
"""

import functools
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from ..data._spec import parse_spec
from ..sample_data import (
    advection_1d_periodic,
    lorenz96_rk4,
    lorenz_rk4,
    make_lorenz96_stepper_rk4,
    make_lorenz_stepper_rk4,
)
from ._dataset import Dataset as Dataset
from ._errors import ConfigError
from ._exponax_source import (
    PDE_HINT,
    exponax_steppers,
    make_exponax_stepper,
    stepper_parameter_fields,
)
from ._files import file_dataset
from ._files import file_path as file_path
from ._files import load_trajectory_file as load_trajectory_file
from ._schema import Field

# scenario -> (exponax class, spatial dims, defaults)
EXPONAX_SCENARIOS = {
    "diffusion_1d": ("Diffusion", 1, dict(num_points=64, dt=0.01, domain_extent=1.0,
                                          num_warmup_steps=0, ic_cutoff=5, diffusivity=0.01)),
    "diffusion_2d": ("Diffusion", 2, dict(num_points=32, dt=0.01, domain_extent=1.0,
                                          num_warmup_steps=0, ic_cutoff=5, diffusivity=0.01)),
    # Small on purpose: a 3D field costs num_points**3 per state.
    "diffusion_3d": ("Diffusion", 3, dict(num_points=16, dt=0.01, domain_extent=1.0,
                                          num_warmup_steps=0, ic_cutoff=3, diffusivity=0.01)),
    "burgers_1d": ("Burgers", 1, dict(num_points=64, dt=0.01, domain_extent=1.0,
                                      num_warmup_steps=0, ic_cutoff=3, diffusivity=0.03)),
    "ks_1d": ("KuramotoSivashinskyConservative", 1, dict(
        num_points=128, dt=0.5, domain_extent=60.0, num_warmup_steps=200, ic_cutoff=5)),
    "ks_combustion_1d": ("KuramotoSivashinsky", 1, dict(
        num_points=128, dt=0.5, domain_extent=60.0, num_warmup_steps=200, ic_cutoff=5)),
}

_SOURCE_DOC = (
    "\"advection\", \"lorenz\", \"lorenz96\", \"exponax:<scenario>\" (scenarios: "
    + ", ".join(EXPONAX_SCENARIOS) + "), \"exponax:<exponax stepper class>\", "
    "\"file:<path.npy|.npz>\" or on disk "
    "\"npy:<path>\", \"hdf5:<path>#<data set>\", \"zarr:<path>[#<array>]\" (each "
    "optionally with \";channels_last\"), \"well:<path>[#<field>,<field>]\""
)
DISK_PREFIXES = ("npy:", "hdf5:", "zarr:", "well:")

# Grid and generation defaults of an `exponax:<Stepper>` source.
_STEPPER_DEFAULTS = dict(num_spatial_dims=1, num_points=64, dt=0.1, domain_extent=1.0,
                         num_warmup_steps=0, ic_cutoff=5)


def _sizes(train: Optional[int], test: Optional[int], horizon: Optional[int]) -> dict:
    return {
        "num_train_samples": Field("int", train, minimum=1, doc="trajectories to train on"),
        "num_test_samples": Field("int", test, minimum=1, doc="trajectories to test on"),
        "temporal_horizon": Field(
            "int", horizon, minimum=2, doc="snapshots per train trajectory, IC included"
        ),
    }


def source_kind(source: str, path: str = "data.source") -> str:
    """`advection`, `lorenz`, `lorenz96`, `exponax`, `file` or `disk`; `ConfigError`
    otherwise."""
    if not isinstance(source, str):
        raise ConfigError(path, _SOURCE_DOC, repr(source))
    if source in ("advection", "lorenz", "lorenz96"):
        return source
    if source.startswith("exponax:"):
        scenario = source[len("exponax:"):]
        if scenario not in EXPONAX_SCENARIOS and scenario not in exponax_steppers():
            import difflib

            names = list(EXPONAX_SCENARIOS) + sorted(exponax_steppers())
            close = difflib.get_close_matches(scenario, names, n=1)
            raise ConfigError(
                path,
                "an exponax scenario in " + ", ".join(EXPONAX_SCENARIOS)
                + " or an exponax stepper class (" + ", ".join(sorted(exponax_steppers()))
                + ")",
                repr(source),
                f"did you mean \"exponax:{close[0]}\"?" if close
                else "write e.g. source = \"exponax:ks_1d\"",
            )
        return "exponax"
    if source.startswith("file:"):
        if not source[len("file:"):]:
            raise ConfigError(path, "a path after 'file:'", repr(source),
                              "write e.g. source = \"file:data/train.npz\"")
        if source.endswith(";channels_last"):
            raise ConfigError(
                path, "';channels_last' only on a source read from disk", repr(source),
                "write \"npy:" + source[len("file:"):] + "\" (a .npy file read from disk)",
            )
        return "file"
    if source.startswith(DISK_PREFIXES):
        if not source.partition(":")[2].partition("#")[0].partition(";")[0]:
            raise ConfigError(path, "a path after the format", repr(source),
                              "write e.g. source = \"hdf5:data/train.h5#u\"")
        try:
            parse_spec(source)
        except ValueError as error:
            raise ConfigError(path, "a source read from disk", repr(source), str(error)) from None
        return "disk"
    raise ConfigError(
        path, _SOURCE_DOC, repr(source), "write e.g. source = \"advection\""
    )


def data_fields(source: str) -> dict[str, Field]:
    """The allowed keys of `[data]` for a source (after `source` and `seed`)."""
    kind = source_kind(source)
    common = {
        "source": Field("str", "advection", doc=_SOURCE_DOC),
        "seed": Field("int", 0, minimum=0, doc="seed of the generated train and test data"),
    }
    if kind == "advection":
        return {**common, **_sizes(50, 30, 51),
                "num_points": Field("int", 32, minimum=4, doc="grid points"),
                "cfl": Field("float", 0.75, doc="shift per step in grid cells"),
                "highest_init_mode": Field("int", 5, minimum=1,
                                           doc="highest Fourier mode of the ICs")}
    if kind == "lorenz":
        return {**common, **_sizes(20, 20, 200),
                "dt": Field("float", 0.01, minimum=0.0, exclusive_minimum=True,
                            doc="time step"),
                "num_warmup_steps": Field("int", 500, minimum=0,
                                          doc="steps discarded to reach the attractor")}
    if kind == "lorenz96":
        return {**common, **_sizes(20, 20, 200),
                "num_points": Field("int", 40, minimum=4, doc="variables on the ring"),
                "dt": Field("float", 0.05, minimum=0.0, exclusive_minimum=True,
                            doc="time step"),
                "forcing": Field("float", 8.0, doc="the forcing F (8 is chaotic)"),
                "num_warmup_steps": Field("int", 1000, minimum=0,
                                          doc="steps discarded to reach the attractor")}
    if kind == "exponax":
        name = source[len("exponax:"):]
        if name in EXPONAX_SCENARIOS:
            _, dims, defaults = EXPONAX_SCENARIOS[name]
        else:
            defaults = _STEPPER_DEFAULTS
        fields = {**common, **_sizes(50, 30, 51),
                  "num_points": Field("int", defaults["num_points"], minimum=4,
                                      doc="grid points per axis"),
                  "dt": Field("float", defaults["dt"], minimum=0.0, exclusive_minimum=True,
                              doc="time step"),
                  "domain_extent": Field("float", defaults["domain_extent"], minimum=0.0,
                                         exclusive_minimum=True, doc="domain length"),
                  "num_warmup_steps": Field("int", defaults["num_warmup_steps"], minimum=0,
                                            doc="steps discarded before recording"),
                  "ic_cutoff": Field("int", defaults["ic_cutoff"], minimum=1,
                                     doc="highest Fourier mode of the ICs")}
        if "diffusivity" in defaults:
            fields["diffusivity"] = Field("float", defaults["diffusivity"], minimum=0.0,
                                          doc="diffusion coefficient")
        if name not in EXPONAX_SCENARIOS:
            fields["num_spatial_dims"] = Field("int", 1, minimum=1, maximum=3,
                                               doc="spatial dimensions")
            fields.update(stepper_parameter_fields(name))
        return fields
    return {**common, **_sizes(None, None, None),
            "test_source": Field("str", "", doc="a file source of separate test data")}


class AdvectionReference(eqx.Module):
    """Exact periodic advection step: shift by `cfl` grid cells (Fourier phase shift)."""

    cfl: float = eqx.field(static=True)

    def __call__(self, u):
        n = u.shape[-1]
        wavenumbers = jnp.fft.rfftfreq(n) * n * 2 * jnp.pi
        phase = jnp.exp(-1j * wavenumbers * (self.cfl / n))
        phase = jnp.expand_dims(phase, tuple(range(u.ndim - 1)))  # over leading axes
        return jnp.fft.irfft(jnp.fft.rfft(u, axis=-1) * phase, n=n, axis=-1).astype(u.dtype)


class ReferenceResiduum(eqx.Module):
    """Residuum `u_next - P(u_prev)` of a reference stepper `P` (batched inputs)."""

    ref_stepper: Callable

    def __call__(self, u_next, u_prev):
        return u_next - jax.vmap(self.ref_stepper)(u_prev)


@functools.partial(jax.jit, static_argnums=0)
def _keys(seed: int):
    train_key, test_key = jax.random.split(jax.random.PRNGKey(seed))
    return train_key, test_key


# Generators compiled as one program each (instead of many small eager operations),
# cached across runs of one process by their static sizes.
@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _advection_trajectories(num_points, cfl, highest_init_mode, num_samples, horizon, key):
    return advection_1d_periodic(num_points, num_samples, cfl=cfl, temporal_horizon=horizon,
                                 highest_init_mode=highest_init_mode, key=key)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _lorenz_trajectories(dt, num_warmup_steps, num_samples, horizon, key):
    return lorenz_rk4(num_samples, temporal_horizon=horizon, dt=dt,
                      num_warmup_steps=num_warmup_steps, key=key)


def _advection(data: dict, test_horizon: int) -> Dataset:
    if data["highest_init_mode"] > data["num_points"] // 2:
        raise ConfigError(
            "data.highest_init_mode",
            f"an integer <= num_points // 2 = {data['num_points'] // 2}",
            str(data["highest_init_mode"]),
            "lower highest_init_mode or raise num_points",
        )
    train_key, test_key = _keys(data["seed"])
    sizes = (data["num_points"], data["cfl"], data["highest_init_mode"])
    train = _advection_trajectories(*sizes, data["num_train_samples"],
                                    data["temporal_horizon"], train_key)
    test = _advection_trajectories(*sizes, data["num_test_samples"], test_horizon, test_key)
    ref = AdvectionReference(float(data["cfl"]))
    return Dataset(train, test, ref, ReferenceResiduum(ref), 1.0, None)


def _lorenz(data: dict, test_horizon: int) -> Dataset:
    train_key, test_key = _keys(data["seed"])
    sizes = (data["dt"], data["num_warmup_steps"])
    train = _lorenz_trajectories(*sizes, data["num_train_samples"], data["temporal_horizon"],
                                 train_key)
    test = _lorenz_trajectories(*sizes, data["num_test_samples"], test_horizon, test_key)
    ref = make_lorenz_stepper_rk4(data["dt"])
    return Dataset(train, test, ref, ReferenceResiduum(ref), data["dt"], None)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _lorenz96_trajectories(num_points, dt, forcing, num_warmup_steps, num_samples, horizon,
                           key):
    return lorenz96_rk4(num_samples, num_points=num_points, temporal_horizon=horizon, dt=dt,
                        forcing=forcing, num_warmup_steps=num_warmup_steps, key=key)


def _lorenz96(data: dict, test_horizon: int) -> Dataset:
    train_key, test_key = _keys(data["seed"])
    sizes = (data["num_points"], data["dt"], data["forcing"], data["num_warmup_steps"])
    train = _lorenz96_trajectories(*sizes, data["num_train_samples"],
                                   data["temporal_horizon"], train_key)
    test = _lorenz96_trajectories(*sizes, data["num_test_samples"], test_horizon, test_key)
    ref = make_lorenz96_stepper_rk4(data["dt"], forcing=data["forcing"])
    return Dataset(train, test, ref, ReferenceResiduum(ref), data["dt"], None)


def _exponax(data: dict, test_horizon: int) -> Dataset:
    try:
        import exponax
    except ImportError:
        raise ConfigError(
            "data.source", "an installed exponax for exponax scenarios",
            f"{data['source']!r} but exponax is not installed", PDE_HINT,
        ) from None
    source = data["source"][len("exponax:"):]
    if source in EXPONAX_SCENARIOS:
        name, dims, defaults = EXPONAX_SCENARIOS[source]
        extra = {}
        if name in ("Diffusion", "Burgers"):
            extra["diffusivity"] = data["diffusivity"]
        if name == "Burgers":
            extra["single_channel"] = True
        stepper = getattr(exponax.stepper, name)(
            dims, data["domain_extent"], data["num_points"], data["dt"], **extra
        )
    else:
        dims = data["num_spatial_dims"]
        stepper = make_exponax_stepper(source, data)
    if data["ic_cutoff"] > data["num_points"] // 2:
        raise ConfigError(
            "data.ic_cutoff", f"an integer <= num_points // 2 = {data['num_points'] // 2}",
            str(data["ic_cutoff"]), "lower ic_cutoff or raise num_points",
        )
    generator = exponax.ic.RandomTruncatedFourierSeries(
        dims, cutoff=data["ic_cutoff"], max_one=True
    )
    if stepper.num_channels > 1:
        generator = exponax.ic.RandomMultiChannelICGenerator(
            (generator,) * stepper.num_channels
        )

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def trajectories(num, horizon, key):
        keys = jax.random.split(key, num)
        ics = jnp.stack([generator(data["num_points"], key=k) for k in keys])
        if data["num_warmup_steps"]:
            ics = jax.vmap(exponax.repeat(stepper, data["num_warmup_steps"]))(ics)
        return jax.vmap(exponax.rollout(stepper, horizon - 1, include_init=True))(ics)

    train_key, test_key = _keys(data["seed"])
    # Some exponax steppers broadcast implicitly; a strict user setting must not break
    # the data generation.
    with jax.numpy_rank_promotion("allow"):
        train = trajectories(data["num_train_samples"], data["temporal_horizon"], train_key)
        test = trajectories(data["num_test_samples"], test_horizon, test_key)
    for array, which in ((train, "train"), (test, "test")):
        if not bool(jnp.all(jnp.isfinite(array))):
            raise ConfigError(
                "data.dt", f"a time step for which the {which} data stays finite",
                f"dt = {data['dt']} ({data['source']} produced NaN/Inf)",
                "lower dt or raise num_points",
            )
    return Dataset(train, test, stepper, ReferenceResiduum(stepper), data["dt"],
                   data["domain_extent"])


def load_data(config: dict) -> tuple[Dataset, dict]:
    """Build the train and test data of a validated configuration.

    **Arguments:**

    - `config`: a configuration from [`trainax_fm.experiment.load_config`][].

    **Returns:**

    - `(dataset, config)`: the [`trainax_fm.experiment.Dataset`][] and the
        configuration with data-dependent defaults (file sizes) filled in.
    """
    test_horizon = config["evaluation"]["num_rollout_steps"] + 1
    kind = source_kind(config["data"]["source"])
    if kind in ("file", "disk"):
        return file_dataset(config, test_horizon)
    make = {"advection": _advection, "lorenz": _lorenz, "lorenz96": _lorenz96,
            "exponax": _exponax}[kind]
    return make(config["data"], test_horizon), config
