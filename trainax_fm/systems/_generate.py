"""`generate_catalogue`: many chaotic systems -> perturbed, validated trajectories on
disk with per-trajectory metadata."""


import hashlib
import io
import math
import json
import multiprocessing
import numbers
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .._argument_checks import check_positive_int
from .._atomic import write_bytes_atomic
from ._channels import apply_channel_selection, channel_selection, max_delay
from ._filter import REJECTION_REASONS, ValidityFilter, _is_non_finite, _is_unbounded
from ._integrate import METHODS, check_tolerance, integrate_system, on_attractor_initial_conditions
from ._perturb import perturb_parameters
from ._registry import get_system
from ._skew import COUPLING, coupling_strength, skew_product
from ._split import split_by_base_system
from ._system import ODESystem
from ._catalogue import (
    FORMAT,
    FORMAT_VERSION,
    METADATA_FILE,
    TRAJECTORIES_FILE,
    Catalogue,
    _json_value,
)

SystemLike = Union[str, ODESystem]


def _resolve(system: Any, argument: str) -> ODESystem:
    if isinstance(system, ODESystem):
        return system
    if isinstance(system, str):
        try:
            return get_system(system)
        except ValueError as error:
            raise ValueError(f"in `{argument}`: {error}") from None
    raise TypeError(
        f"`{argument}` must hold system names or ODESystem objects, got {system!r} of type "
        f"{type(system).__name__}."
    )


def _count(table: dict, system: str, reason: str) -> None:
    table.setdefault(system, {}).setdefault(reason, 0)
    table[system][reason] += 1


def _generate_variant(task) -> tuple[ODESystem, Optional[str], list[np.ndarray]]:
    """One variant of one system: perturb, validate its reference trajectory, sample
    its trajectories. Returns `(variant, rejection reason or None, trajectories)`;
    module level, so worker processes can run it."""
    system, selection, keep, (seed, index, variant), settings = task
    options = settings["options"]
    rng = np.random.default_rng([seed, index, variant, 0])
    candidate = system
    if variant > 0:
        candidate = system.with_parameters(
            perturb_parameters(system.parameters, rng=rng, scale=settings["scale"], keep=keep)
        )
    initial, reference = on_attractor_initial_conditions(
        candidate,
        settings["num_trajectories"],
        rng=rng,
        num_transient_steps=settings["num_transient_steps"],
        num_reference_steps=settings["num_reference_steps"],
        **options,
    )
    reason = settings["filter"](reference)
    if reason is not None:
        return candidate, reason, []
    lead = max_delay(selection)
    trajectories = []
    for start in initial:
        trajectory = integrate_system(
            candidate, start, settings["num_time_steps"] + lead, **options
        )
        if _is_non_finite(trajectory):
            return candidate, "non_finite", []
        if _is_unbounded(trajectory, options["bound"]):
            return candidate, "unbounded", []
        trajectories.append(apply_channel_selection(trajectory, selection).astype(np.float32))
    return candidate, None, trajectories


def generate_catalogue(
    systems: Sequence[SystemLike],
    path: Union[str, os.PathLike],
    *,
    num_trajectories_per_system: int,
    num_time_steps: int,
    seed: int,
    num_perturbations: int = 4,
    skew_pairs: Sequence[tuple[SystemLike, SystemLike]] = (),
    num_channels: int = 3,
    held_out: Sequence[str] = (),
    perturbation_scale: float = 0.5,
    num_transient_steps: int = 500,
    num_reference_steps: int = 2000,
    delay_steps: int = 5,
    validity_filter: Optional[ValidityFilter] = None,
    method: str = "DOP853",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    num_workers: int = 1,
) -> Catalogue:
    """Generate many chaotic trajectories of many systems and write them to `path`.

    For each system (the `systems`, then one skew product per pair of `skew_pairs`,
    [`trainax_fm.systems.skew_product`][] with its default coupling) and each of its
    variants (the default parameters, then `num_perturbations` perturbations
    [`trainax_fm.systems.perturb_parameters`][] with `scale=perturbation_scale`; a
    skew product's coupling is kept):

    1. a reference trajectory of `num_reference_steps` samples, after
        `num_transient_steps` discarded ones, from the reference initial condition
        plus 1 % noise ([`trainax_fm.systems.on_attractor_initial_conditions`][]);
    2. the validity filter on it; a rejected variant is dropped and counted under
        its reason;
    3. `num_trajectories_per_system` initial conditions drawn along it, each
        integrated for `num_time_steps` samples (plus the delays of the channel
        selection); a variant with a non-finite or unbounded trajectory is dropped
        and counted;
    4. the fixed channel selection ([`trainax_fm.systems.channel_selection`][], one
        per system, seeded): `num_channels` coordinates of a system of higher
        dimension, delay coordinates for a system of lower dimension.

    So each system contributes `num_trajectories_per_system` trajectories per
    accepted variant. Trajectories are split by base system
    ([`trainax_fm.systems.split_by_base_system`][]); the file stores the training
    trajectories first. Everything random derives from `seed`: the same arguments
    write byte-identical files. Both files are written atomically (the `.npy`
    first; `catalogue.json` records its SHA-256, so a reader notices a torn pair).

    Integration: `scipy.integrate.solve_ivp` (`method`, `rtol`, `atol`), sampled at
    each system's `dt`; generation runs on the CPU (seconds per system variant).

    **Arguments:**

    - `systems`: names ([`trainax_fm.systems.get_system`][]) or `ODESystem`s.
    - `path`: the directory to write (created if missing; existing catalogue files
        in it are replaced).
    - `num_trajectories_per_system`: trajectories per system variant.
    - `num_time_steps`: samples per trajectory, `T >= 2`.
    - `seed`: an integer, the only source of randomness.
    - `num_perturbations`: perturbed variants per system (besides the default).
    - `skew_pairs`: `(driver, response)` pairs (names or `ODESystem`s).
    - `num_channels`: `C`, the channels stored for every system.
    - `held_out`: base systems whose trajectories (and skew products) form the
        test split.
    - `perturbation_scale`: the relative size of the parameter perturbations.
    - `num_transient_steps`, `num_reference_steps`: of the reference trajectory.
    - `delay_steps`: the delay (in samples) of delay-coordinate channels.
    - `validity_filter`: a [`trainax_fm.systems.ValidityFilter`][]; `None` uses its
        defaults.
    - `method`, `rtol`, `atol`: of `solve_ivp`.
    - `num_workers`: processes that generate system variants in parallel (`1`: in
        this process). The result does not depend on it: every variant draws from
        its own seed. Needs picklable systems (vector fields defined at module level,
        as the built-ins and dysts systems are).

    **Returns:**

    - The [`trainax_fm.systems.Catalogue`][] written.

    **Raises:**

    - Before any work, `ValueError`/`TypeError` for an unknown system name (with
        the close names), a duplicate system, a held-out name that no system is
        built from, held-out systems that leave nothing to train on, or bad sizes.
    - `ValueError` naming a system none of whose variants passed, with the
        rejection counts; nothing is written then.
    """
    # Every check first: a bad argument must not cost a minute of integration.
    if isinstance(systems, (str, ODESystem)) or not isinstance(systems, Sequence):
        raise TypeError(
            f"`systems` must be a sequence of system names or ODESystems, got {systems!r}; "
            "wrap a single system in a list."
        )
    resolved = [_resolve(system, "systems") for system in systems]
    for pair in skew_pairs:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"`skew_pairs` must hold (driver, response) pairs, got {pair!r}.")
    pairs = [(_resolve(d, "skew_pairs"), _resolve(r, "skew_pairs")) for d, r in skew_pairs]
    if not resolved and not pairs:
        raise ValueError("`systems` and `skew_pairs` are both empty: nothing to generate.")
    num_trajectories_per_system = check_positive_int(
        num_trajectories_per_system, "num_trajectories_per_system"
    )
    num_time_steps = check_positive_int(num_time_steps, "num_time_steps", minimum=2)
    num_perturbations = check_positive_int(num_perturbations, "num_perturbations", minimum=0)
    num_channels = check_positive_int(num_channels, "num_channels")
    num_transient_steps = check_positive_int(num_transient_steps, "num_transient_steps", minimum=0)
    num_reference_steps = check_positive_int(num_reference_steps, "num_reference_steps", minimum=40)
    delay_steps = check_positive_int(delay_steps, "delay_steps")
    if num_trajectories_per_system > num_reference_steps:
        raise ValueError(
            f"`num_trajectories_per_system` ({num_trajectories_per_system}) must be at most "
            f"`num_reference_steps` ({num_reference_steps}): initial conditions are distinct "
            "samples of the reference trajectory."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"`seed` must be an integer >= 0, got {seed!r}.")
    seed = int(seed)
    if validity_filter is None:
        validity_filter = ValidityFilter()
    if not isinstance(validity_filter, ValidityFilter):
        raise TypeError(
            "`validity_filter` must be a ValidityFilter or None, got "
            f"{type(validity_filter).__name__}."
        )
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    rtol, atol = check_tolerance(rtol, "rtol"), check_tolerance(atol, "atol")
    if (
        isinstance(perturbation_scale, bool)
        or not isinstance(perturbation_scale, numbers.Real)
        or not (math.isfinite(perturbation_scale) and perturbation_scale >= 0)
    ):
        raise ValueError(
            f"`perturbation_scale` must be a finite number >= 0, got {perturbation_scale!r}."
        )
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"`path` must be a directory (or not exist yet), got the file {str(path)!r}."
        )
    names = [s.name for s in resolved] + [f"{d.name}_{r.name}" for d, r in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"systems appear more than once: {duplicates}; list each once.")
    base_rows = [s.base_systems for s in resolved] + [
        d.base_systems + r.base_systems for d, r in pairs
    ]
    planned_splits = split_by_base_system(base_rows, held_out)
    if "train" not in planned_splits:
        raise ValueError(
            f"`held_out` {list(held_out)} holds out every system: nothing is left to train on."
        )
    num_workers = check_positive_int(num_workers, "num_workers")
    if num_workers > 1:
        for system in resolved + [part for pair in pairs for part in pair]:
            try:
                pickle.dumps(system)
            except Exception as error:
                raise TypeError(
                    f"num_workers={num_workers} sends the systems to worker processes, but "
                    f"{system.name!r} cannot be pickled ({error}); define its vector field "
                    "as a module-level function, or pass num_workers=1."
                ) from None
    options = {"method": method, "rtol": rtol, "atol": atol, "bound": validity_filter.bound}
    settings = {
        "options": options,
        "filter": validity_filter,
        "num_trajectories": num_trajectories_per_system,
        "num_time_steps": num_time_steps,
        "num_transient_steps": num_transient_steps,
        "num_reference_steps": num_reference_steps,
        "scale": perturbation_scale,
    }

    # The work: skew products need their coupling, computed from the base systems.
    all_systems = list(resolved) + [
        skew_product(d, r, coupling=coupling_strength(d, r, method=method, rtol=rtol, atol=atol))
        for d, r in pairs
    ]
    rejections = {reason: 0 for reason in REJECTION_REASONS}
    by_system: dict[str, dict[str, int]] = {}
    blocks, entries = [], []
    tasks = []
    for index, system in enumerate(all_systems):
        selection = channel_selection(
            system.dimension,
            num_channels,
            rng=np.random.default_rng([seed, index, 0, 1]),
            delay_steps=delay_steps,
        )
        # A skew product keeps its coupling: kappa balances the two fields, by design.
        keep = (COUPLING,) if index >= len(resolved) else ()
        for variant in range(num_perturbations + 1):
            tasks.append((system, selection, keep, (seed, index, variant), settings))
    if num_workers == 1:
        results = [_generate_variant(task) for task in tasks]
    else:
        # "spawn": JAX's threads make forking the parent unsafe.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(num_workers, mp_context=context) as pool:
            results = list(pool.map(_generate_variant, tasks))
    rejections = {reason: 0 for reason in REJECTION_REASONS}
    by_system: dict[str, dict[str, int]] = {}
    blocks, entries = [], []
    accepted = dict.fromkeys(range(len(all_systems)), 0)
    for (system, selection, _, (_, index, variant), _), (candidate, reason, trajectories) in zip(
        tasks, results
    ):
        if reason is not None:
            rejections[reason] += 1
            _count(by_system, system.name, reason)
            continue
        accepted[index] += 1
        for trajectory in trajectories:
            blocks.append(trajectory)
            entries.append(
                {
                    "system": system.name,
                    "base_systems": list(system.base_systems),
                    "parameters": {k: _json_value(v) for k, v in candidate.parameters.items()},
                    "perturbation": variant,
                    "dt": candidate.dt,
                    "dimension": candidate.dimension,
                    "channels": [list(channel) for channel in selection],
                    "lyapunov_exponent": candidate.lyapunov_exponent,
                }
            )
    for index, system in enumerate(all_systems):
        if accepted[index] == 0:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(by_system[system.name].items()))
            raise ValueError(
                f"system {system.name!r} never passed the validity filter: all "
                f"{num_perturbations + 1} variants (default parameters and perturbations) "
                f"were rejected ({counts}). Remove it, lengthen num_reference_steps, or "
                "relax the ValidityFilter thresholds. Nothing was written."
            )
    splits = split_by_base_system([e["base_systems"] for e in entries], held_out)
    order = [i for i, s in enumerate(splits) if s == "train"] + [
        i for i, s in enumerate(splits) if s == "test"
    ]
    data = np.stack([blocks[i] for i in order])
    entries = [{**entries[i], "split": splits[i]} for i in order]
    buffer = io.BytesIO()
    np.save(buffer, data, allow_pickle=False)
    payload = buffer.getvalue()
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "shape": list(data.shape),
        "dtype": "float32",
        "trajectories_sha256": hashlib.sha256(payload).hexdigest(),
        "num_channels": num_channels,
        "channel_rule": "fixed selection: a seeded subset of num_channels coordinates for "
        "D >= num_channels, delay coordinates of its own components for D < num_channels",
        "seed": seed,
        "held_out": list(held_out),
        "settings": {
            "num_trajectories_per_system": num_trajectories_per_system,
            "num_time_steps": num_time_steps,
            "num_perturbations": num_perturbations,
            "perturbation_scale": perturbation_scale,
            "num_transient_steps": num_transient_steps,
            "num_reference_steps": num_reference_steps,
            "delay_steps": delay_steps,
            "method": method,
            "rtol": rtol,
            "atol": atol,
            "skew_pairs": [[d.name, r.name] for d, r in pairs],
        },
        "validity_filter": validity_filter.as_dict(),
        "rejections": rejections,
        "rejections_by_system": by_system,
        "trajectories": entries,
    }
    text = json.dumps(metadata, indent=1, sort_keys=True) + "\n"
    path.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path / TRAJECTORIES_FILE, payload)
    write_bytes_atomic(path / METADATA_FILE, text.encode())
    return Catalogue(path, metadata)


