"""Parameter perturbations: new systems near a known chaotic one."""

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np


def perturb_parameters(
    parameters: Mapping[str, Any],
    *,
    rng: np.random.Generator,
    scale: float = 0.5,
    variance_floor: float = 1e-6,
    sign_match_probability: float = 0.0,
    keep: Collection[str] = (),
) -> dict[str, Any]:
    """Perturb each parameter by a Gaussian proportional to its magnitude.

    The recipe of Panda's dysts-based generation (its signed Gaussian parameter
    sampler): each parameter `p` (each entry of an array parameter) becomes

    `p + delta`, `delta ~ N(0, (scale * |p|)^2 + variance_floor)`,

    and with probability `sign_match_probability` (one draw per parameter) the
    perturbation takes the sign of the parameter, `delta -> sign(p) |delta|`, so that
    a positive parameter only grows. The floor lets parameters that are zero move.
    Draws go parameter by parameter in sorted name order: first the standard normal
    values (the parameter's shape), then one uniform number for the sign.

    **Arguments:**

    - `parameters`: name -> real number or real array.
    - `rng`: a NumPy `Generator`.
    - `scale`: the relative standard deviation (Panda's `param_scale`; its large
        runs use 1.0, its sampler defaults to 0.01; 0.5 keeps most perturbed systems
        chaotic).
    - `variance_floor`: added to the variance.
    - `sign_match_probability`: in `[0, 1]`.
    - `keep`: names left unchanged (no draws are made for them).

    **Returns:**

    - A new dict with the same names; scalars stay Python floats.
    """
    if not isinstance(parameters, Mapping):
        raise TypeError(
            f"`parameters` must be a mapping name -> value, got {type(parameters).__name__}."
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"`rng` must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}."
        )
    for value, name in ((scale, "scale"), (variance_floor, "variance_floor")):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    if (
        isinstance(sign_match_probability, bool)
        or not isinstance(sign_match_probability, (int, float))
        or not 0 <= sign_match_probability <= 1
    ):
        raise ValueError(
            f"`sign_match_probability` must be a number in [0, 1], got {sign_match_probability!r}."
        )
    unknown = sorted(set(keep) - set(parameters))
    if unknown:
        raise ValueError(
            f"`keep` names {unknown} are not parameters; the parameters are {sorted(parameters)}."
        )
    out = {}
    for name in sorted(parameters):
        value = parameters[name]
        if name in keep:
            out[name] = value
            continue
        p = np.asarray(value, dtype=np.float64)
        std = np.sqrt((scale * np.abs(p)) ** 2 + variance_floor)
        delta = std * rng.standard_normal(p.shape)
        if rng.random() < sign_match_probability:
            delta = np.sign(p) * np.abs(delta)
        new = p + delta
        out[name] = float(new) if new.ndim == 0 else new
    return out
