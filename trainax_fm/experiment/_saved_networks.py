"""The networks of a results folder: their files, and loading them back (a distilled
run's teacher included)."""

import os
from pathlib import Path
from typing import Any, Sequence, Union

import equinox as eqx
import jax
import jax.numpy as jnp

from .._state._stepper_file import load_stepper, save_stepper
from ._errors import ConfigError
from ._method import METHODS, TrainMethod
from ._method_spec import parse_method
from ._setup import (
    build_stepper,
    load_teacher_config,
    seed_slice,
    teacher_words,
    with_normalization,
)
from ._wording import term


NETWORK_FILE = "network.eqx"
# The best stepper of the validation (seed-stacked with several seeds).
BEST_FILE = "best.eqx"


def network_files(num_seeds: int) -> list[str]:
    """File names of the saved networks: `network.eqx`, or one per seed."""
    if num_seeds == 1:
        return [NETWORK_FILE]
    return [f"network_seed{i}.eqx" for i in range(num_seeds)]


def save_networks(results_dir: Path, steppers: Sequence[Any]) -> list[Path]:
    """Write the trained stepper of every seed (`network.eqx` or one file per seed)
    with [`trainax_fm.save_stepper`][] (normalisation statistics included)."""
    return [
        save_stepper(results_dir / name, stepper)
        for stepper, name in zip(steppers, network_files(len(steppers)))
    ]


def scored_network_file(results_dir: Union[str, os.PathLike], config: dict) -> str:
    """The network file(s) whose test metrics training reported: `best.eqx` when the
    validation picked a best and `[validation] evaluate = "best"`, else the final
    `network.eqx` (`network_seed*.eqx` with several seeds)."""
    if config["validation"]["evaluate"] == "best" and (Path(results_dir) / BEST_FILE).is_file():
        return BEST_FILE
    return NETWORK_FILE if config["num_seeds"] == 1 else "network_seed*.eqx"


def load_teacher(results_dir: str, num_channels: int, num_spatial_dims: int, num_points: int,
                 kinds: tuple = ("fm",), num_constant_channels: int = 0, *,
                 role: str = "TEACHER", runs: str = "", part=None):
    """The trained velocity of a finished teacher run (its first seed), for distillation
    (or another `part` of its stepper).

    Call it outside any traced function and hand the result to `build_stepper`: a
    file read under a trace would put tracers into the module. Nothing is cached, so a
    retrained teacher is read afresh.

    **Arguments:**

    - `results_dir`: the results folder of the teacher run.
    - `num_channels`, `num_spatial_dims`, `num_points`: the state layout of the data
        (the teacher must have been trained on the same layout).
    - `kinds`: the methods the teacher run may have used (`fm`; `fm` or `pd` for
        `pd`).
    - `num_constant_channels`: channels of the data's constants (a conditioned
        teacher), else 0.
    - `role`, `runs`: what errors call the folder and the run it must hold (`runs`
        `""`: the `kinds`).
    - `part`: `part(stepper)` of the first seed's final stepper, or `None` for its
        velocity.

    **Returns:**

    - The teacher's [`trainax_fm.flow.ConditionalVelocity`][] (or its `part`).

    **Raises:**

    - `ConfigError` (field `training.method`) if the folder holds no finished run of
        one of `kinds`, or its network does not fit the data's layout.
    """
    folder = Path(results_dir)
    teacher_config = load_teacher_config(results_dir, kinds, role, runs)
    state_shape = (num_channels,) + (num_points,) * num_spatial_dims
    names = runs or " or ".join(kinds) + " run"
    try:
        networks = load_networks(folder, teacher_config, state_shape, num_constant_channels)
    except FileNotFoundError as error:
        raise ConfigError(
            "training.method", f"the results folder of a finished {names} as {role}",
            repr(results_dir), f"finish training the {runs or 'teacher'} first ({error})",
        ) from None
    except ValueError as error:  # a ConfigError too: the teacher's network on this layout
        raise ConfigError(
            "training.method",
            f"a {role} whose network fits this run's data (states of shape "
            f"{state_shape}"
            + (f", {num_constant_channels} constant channel(s)" if num_constant_channels
               else "") + ")",
            repr(results_dir) + f" ({error})",
            f"train that run on data of the same layout, or name another {role}",
        ) from None
    return networks[0].velocity if part is None else part(networks[0])


def load_method_teacher(method: TrainMethod, num_channels: int, num_spatial_dims: int,
                        num_points: int, num_constant_channels: int = 0):
    """`load_teacher` of the TEACHER folder `method` names (the part of its stepper
    the method takes), or `None` if it names none."""
    if method.teacher is None:
        return None
    kinds, role, runs = teacher_words(method)
    return load_teacher(method.teacher, num_channels, num_spatial_dims, num_points,
                        kinds, num_constant_channels, role=role, runs=runs,
                        part=METHODS[method.kind].teacher_part)


def check_teacher_data(method: TrainMethod, config: dict) -> None:
    """Raise a `ConfigError` if `method` needs its folder's run trained on the same
    data (`therm`: the emulator it thermalizes) and that run's `[data]` differs from
    `config`'s (both with every default filled in)."""
    if method.teacher is None or not METHODS[method.kind].same_data_teacher:
        return
    kinds, role, runs = teacher_words(method)
    theirs = load_teacher_config(method.teacher, kinds, role, runs)["data"]
    ours = config["data"]
    differing = sorted(key for key in set(ours) | set(theirs) if ours.get(key) != theirs.get(key))
    if differing:
        shown = ", ".join(f"{key} = {theirs.get(key)!r} there, {ours.get(key)!r} here"
                          for key in differing)
        raise ConfigError(
            "training.method",
            f"an {runs or 'run'} in {role} trained on this run's data (the same [data] "
            "table)",
            repr(method.teacher) + f" ({shown})",
            f"copy the [data] table of {str(Path(method.teacher) / 'config.toml')!r}, or "
            f"name a {runs or role} trained on this data",
        )


def load_networks(
    results_dir: Union[str, os.PathLike], config: dict, state_shape,
    num_constant_channels: int = 0, *, best: bool = False,
) -> list:
    """Rebuild the emulators of a results folder from its config and saved leaves.

    **Arguments:**

    - `results_dir`: a folder written by `run_experiment`.
    - `config`: its configuration.
    - `state_shape`: `(C, *spatial)` of one state.
    - `num_constant_channels`: channels of the data's constants per trajectory (a
        conditioned emulator), else 0.
    - `best`: load the best networks of the validation (`best.eqx`) instead of the
        final ones (`network.eqx` / `network_seed<i>.eqx`).

    **Returns:**

    - A list with one stepper per seed.
    """
    results_dir = Path(results_dir)
    num_seeds = config["num_seeds"]
    state_shape = tuple(int(n) for n in state_shape)
    layout = (state_shape[0], len(state_shape) - 1,
              min(state_shape[1:]) if len(state_shape) > 1 else 0)
    # A distilled emulator is built around its teacher's network: the teacher is read
    # here, outside the abstract evaluation below, where a file read would leave
    # tracers in the module.
    teacher = load_method_teacher(parse_method(config["training"]["method"]), *layout,
                                  num_constant_channels)

    def build(key, teacher):
        network = build_stepper(config, *layout, key, num_constant_channels, teacher)
        # Statistics of the right shapes; their values are read from the file.
        return with_normalization(config, network, jnp.zeros((1, 2) + state_shape), None)

    # Only the structure is needed: abstract evaluation costs no computation.
    if best:
        return _load_best(results_dir, build, teacher, num_seeds)
    skeleton = eqx.filter_eval_shape(build, jax.random.PRNGKey(0), teacher)
    out = []
    for name in network_files(num_seeds):
        path = results_dir / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(path)!r} is missing: the run in {str(results_dir)!r} has not "
                f"finished training (continue it with `{term('resume_run')}`)."
            )
        try:
            out.append(load_stepper(path, skeleton))
        except ValueError as error:
            raise ValueError(
                f"{str(path)!r} does not match the network of {results_dir / 'config.toml'} "
                f"({error})."
            ) from None
    return out


def _load_best(results_dir: Path, build, teacher, num_seeds: int) -> list:
    """The seeds of `best.eqx` (one stepper, or the seeds stacked on a leading axis)."""
    path = results_dir / BEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is missing: the run in {str(results_dir)!r} has no validated "
            "best network (it trained without validation data, or before its first "
            "validation); load the final networks instead."
        )
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    if num_seeds == 1:
        skeleton = eqx.filter_eval_shape(build, keys[0], teacher)
    else:
        skeleton = eqx.filter_eval_shape(eqx.filter_vmap(build, in_axes=(0, None)), keys,
                                         teacher)
    try:
        stacked = load_stepper(path, skeleton)
    except ValueError as error:
        raise ValueError(
            f"{str(path)!r} does not match the network of {results_dir / 'config.toml'} "
            f"({error})."
        ) from None
    if num_seeds == 1:
        return [stacked]
    return [seed_slice(stacked, i) for i in range(num_seeds)]
