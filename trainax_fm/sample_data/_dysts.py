import difflib
import warnings
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._checks import check_key, check_real


def _import_dysts():
    try:
        with warnings.catch_warnings():
            # dysts runs without numba, only slower; generation here is not its hot path.
            warnings.filterwarnings("ignore", message="Numba not installed")
            import dysts.flows
            import dysts.systems
    except ImportError:
        raise ImportError(
            "The dysts catalogue needs the optional dependency `dysts`: "
            "pip install 'trainax_fm[dysts]'."
        ) from None
    return dysts


def dysts_systems() -> list[str]:
    """Names of the chaotic ODEs of the `dysts` catalogue (without delay equations).

    Needs the optional extra: `pip install 'trainax_fm[dysts]'`.

    **Returns:**

    - The sorted system names, e.g. `"Lorenz"`, `"Rossler"`, `"Aizawa"`.
    """
    return list(_import_dysts().systems.get_attractor_list("continuous_no_delay"))


def dysts_trajectories(
    name: str,
    num_samples: int = 8,
    *,
    temporal_horizon: int = 1000,
    pts_per_period: int = 20,
    num_warmup_steps: int = 100,
    init_std: float = 0.1,
    key: Optional[PRNGKeyArray] = None,
) -> Float[Array, "num_samples temporal_horizon dimension"]:
    """Trajectories of one chaotic ODE of the `dysts` catalogue, generated locally.

    Each trajectory starts from the system's reference initial condition perturbed by
    Gaussian noise of standard deviation `init_std` (relative to its magnitude), is
    integrated by dysts (SciPy's RK45) and sampled at `pts_per_period` points per
    dominant period of the attractor, after `num_warmup_steps` discarded samples (so
    the states lie on the attractor). Generation runs on the CPU in NumPy; expect
    about a second per trajectory of 1000 samples.

    Needs the optional extra: `pip install 'trainax_fm[dysts]'`.

    **Arguments:**

    - `name`: a system of [`trainax_fm.sample_data.dysts_systems`][] (e.g. `"Lorenz"`).
    - `num_samples`: number of trajectories.
    - `temporal_horizon`: stored snapshots per trajectory.
    - `pts_per_period`: samples per dominant period (the time step of the data).
    - `num_warmup_steps`: samples discarded at the start of each trajectory.
    - `init_std`: relative size of the initial perturbation.
    - `key`: a `jax.random` key (keyword only, required).

    **Returns:**

    - A float32 array `(num_samples, temporal_horizon, D)`, `D` the system's dimension.
    """
    check_key(key, "dysts_trajectories")
    num_samples = check_positive_int(num_samples, "num_samples")
    temporal_horizon = check_positive_int(temporal_horizon, "temporal_horizon")
    pts_per_period = check_positive_int(pts_per_period, "pts_per_period")
    num_warmup_steps = check_positive_int(num_warmup_steps, "num_warmup_steps", minimum=0)
    check_real(init_std, "init_std", non_negative=True)
    dysts = _import_dysts()
    systems = dysts.systems.get_attractor_list("continuous_no_delay")
    if not isinstance(name, str) or name not in systems:
        close = difflib.get_close_matches(str(name), systems, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"`name` must be a dysts system (see sample_data.dysts_systems(), "
            f"{len(systems)} of them), got {name!r}.{hint}"
        )
    system = getattr(dysts.flows, name)()
    reference = np.asarray(system.ic, dtype=np.float64)
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    trajectories = []
    for _ in range(num_samples):
        scale = init_std * (np.abs(reference) + 1.0)
        initial = reference + scale * rng.standard_normal(reference.shape)
        with warnings.catch_warnings():
            # dysts hands RK45 a Jacobian it does not use; SciPy warns about it.
            warnings.filterwarnings("ignore", message="The following arguments have no effect")
            trajectory = system.make_trajectory(
                num_warmup_steps + temporal_horizon,
                init_cond=initial,
                pts_per_period=pts_per_period,
                method="RK45",
                rtol=1e-8,
                atol=1e-8,
            )
        if trajectory is None or not np.all(np.isfinite(trajectory)):
            raise ValueError(
                f"dysts could not integrate {name!r} from a perturbed initial condition "
                "(the trajectory diverged); lower `init_std`."
            )
        trajectories.append(np.asarray(trajectory)[num_warmup_steps:])
    return jnp.asarray(np.stack(trajectories), dtype=jnp.float32)
