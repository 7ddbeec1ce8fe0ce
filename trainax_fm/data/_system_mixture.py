"""`SystemMixture`: trajectories of many systems drawn with mixing weights per system."""

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._disk import DiskTrajectories


def _check_labels(systems, num_trajectories: int) -> tuple[str, ...]:
    if isinstance(systems, (str, bytes)) or not isinstance(systems, (Sequence, np.ndarray)):
        raise TypeError(
            "`systems` must be a sequence of one system name (str) per trajectory, got "
            f"{type(systems).__name__}."
        )
    labels = tuple(systems)
    if len(labels) != num_trajectories:
        raise ValueError(
            f"`systems` must name the system of each of the {num_trajectories} "
            f"trajectories (S = {num_trajectories}), got {len(labels)} labels. Pass one "
            "label per trajectory, in the order of the trajectories."
        )
    for label in labels:
        if not isinstance(label, str) or not label:
            raise TypeError(f"`systems` must hold non-empty strings, got {label!r}.")
    return labels


def _check_weights(weights, names: tuple[str, ...]) -> tuple[float, ...]:
    """One weight per system of `names` (missing ones 0), normalised to sum to 1."""
    if weights is None:
        return (1.0 / len(names),) * len(names)
    if not isinstance(weights, Mapping):
        raise TypeError(
            "`weights` must be a dict of system name -> weight (or None for equal "
            f"weights), got {type(weights).__name__}."
        )
    for name, weight in weights.items():
        if name not in names:
            raise ValueError(
                f"`weights` has a weight for the system {name!r}, which no trajectory "
                f"is labelled with; the systems are {list(names)}."
            )
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise TypeError(f"the weight of {name!r} must be a number, got {weight!r}.")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(
                f"the weight of {name!r} must be finite and >= 0, got {weight!r}."
            )
    values = [float(weights.get(name, 0.0)) for name in names]
    total = sum(values)
    if total <= 0:
        raise ValueError(
            f"`weights` must give at least one system a positive weight, got {dict(weights)!r}."
        )
    return tuple(value / total for value in values)


def largest_remainder(shares: Sequence[float], total: int) -> tuple[int, ...]:
    """Integers proportional to `shares` (summing to 1) that sum to `total`: each
    share's floor, plus one for the largest fractional parts (ties: first share)."""
    quotas = [share * total for share in shares]
    counts = [math.floor(quota) for quota in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


class SystemMixture(eqx.Module):
    r"""Trajectories of many systems, mixed with a weight per system: a data source.

    For an epoch of `num_trajectories` rows, system `s` gets
    $n_s = \mathrm{round}(w_s / \sum_r w_r \cdot \text{num\_trajectories})$ rows
    (largest-remainder rounding, so the $n_s$ sum to `num_trajectories`), each row one
    of the system's trajectories. The mixture is again an ordinary source (its
    `trajectories` are those rows, in memory or as a
    [`trainax_fm.data.DiskTrajectories`][] restricted to them), so every trainer
    accepts it in place of `data_trajectories` and every engine path (in memory, on
    disk, on a mesh, over several processes) works unchanged: the engine's uniform
    stream of windows over the rows then draws the windows of system `s` with
    frequency $n_s / \text{num\_trajectories} \approx w_s / \sum_r w_r$.

    **Which trajectories.** With `m_s` trajectories of system `s`, each is used
    `n_s // m_s` times and `n_s % m_s` of them once more, chosen without replacement
    by `jax.random.choice(jax.random.fold_in(key, i), m_s, (n_s % m_s,),
    replace=False)` for the `i`-th system (systems in sorted order of their names,
    which is also the order of `systems`, `weights` and `row_counts`). So the same key
    gives the same mixture; a row repeats a trajectory only when the system has more
    rows than trajectories. The rows are stored system by system, each system's in
    file order.

    In memory the mixture holds its `num_trajectories` rows as one array (repeated
    trajectories are copies); on disk it holds only their indices.

    **Arguments:**

    - `trajectories`: `(S, T, C, *spatial)`, an array (NumPy or JAX) or a
        [`trainax_fm.data.DiskTrajectories`][]. For a catalogue of systems of different
        dimension, all stored with the catalogue's fixed number of channels `C`.
    - `systems`: the system of each trajectory, `S` strings (a catalogue's
        per-trajectory system labels).
    - `weights`: mixing weight per system name, any non-negative numbers (they need
        not sum to 1); a system left out gets weight 0 and no rows. `None` (default):
        equal weights per system (not per trajectory).
    - `key`: the key of the draw.
    - `num_trajectories`: rows of the mixture (default `S`).

    **Raises:**

    - `ValueError` for a label count other than `S`, a weight for a system no
        trajectory has (the message lists the systems), a negative or non-finite
        weight or weights that sum to 0; `TypeError` for arguments of the wrong type.
    """

    trajectories: Union[Float[Array, "rows time channels *spatial"], DiskTrajectories]
    # The trajectory of the input behind each row of the mixture.
    rows: tuple[int, ...] = eqx.field(static=True)
    # The systems (sorted names), their normalised weights and their numbers of rows.
    systems: tuple[str, ...] = eqx.field(static=True)
    weights: tuple[float, ...] = eqx.field(static=True)
    row_counts: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        trajectories: Union[
            Float[Array, "num_trajectories time channels *spatial"], DiskTrajectories
        ],
        systems: Sequence[str],
        weights: Optional[Mapping[str, float]] = None,
        *,
        key: PRNGKeyArray,
        num_trajectories: Optional[int] = None,
    ):
        on_disk = isinstance(trajectories, DiskTrajectories)
        if not on_disk:
            if not hasattr(trajectories, "shape") or not hasattr(trajectories, "dtype"):
                raise TypeError(
                    "`trajectories` must be an array (S, T, C, *spatial) or a "
                    f"trainax_fm.data.DiskTrajectories, got {type(trajectories).__name__}."
                )
            if len(trajectories.shape) < 3:
                raise ValueError(
                    "`trajectories` must be shaped (S, T, C, *spatial) ((S, T, C) for ODE "
                    f"states), got shape {tuple(trajectories.shape)}."
                )
        num_input = trajectories.shape[0]
        labels = _check_labels(systems, num_input)
        names = tuple(sorted(set(labels)))
        shares = _check_weights(weights, names)
        num_rows = (
            num_input
            if num_trajectories is None
            else check_positive_int(num_trajectories, "num_trajectories")
        )
        if not isinstance(key, jax.Array) or key.ndim != (
            0 if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else 1
        ):
            raise TypeError(
                "`key` must be one JAX PRNG key (jax.random.key(seed)), got "
                f"{type(key).__name__} of shape {np.shape(key)}."
            )
        counts = largest_remainder(shares, num_rows)
        starved = [n for n, share, c in zip(names, shares, counts) if share > 0 and c == 0]
        if starved:
            warnings.warn(
                f"SystemMixture: the systems {starved} have a positive weight but get no "
                f"row of the {num_rows}; raise `num_trajectories` to include them.",
                stacklevel=2,
            )
        members = {name: [] for name in names}
        for index, label in enumerate(labels):
            members[label].append(index)
        rows = []
        for i, (name, count) in enumerate(zip(names, counts)):
            own = np.asarray(members[name])
            repeats, extra = divmod(count, len(own))
            chosen = np.repeat(own, repeats)
            if extra:
                picks = jax.random.choice(
                    jax.random.fold_in(key, i), len(own), (extra,), replace=False
                )
                chosen = np.concatenate([chosen, own[np.asarray(picks)]])
            rows.extend(np.sort(chosen).tolist())
        self.rows = tuple(int(row) for row in rows)
        self.systems = names
        self.weights = shares
        self.row_counts = counts
        if on_disk:
            self.trajectories = trajectories.select_rows(self.rows)
        else:
            # Indexed before the transfer: only the rows reach the device.
            self.trajectories = jnp.asarray(trajectories[np.asarray(self.rows)])

    @property
    def shape(self) -> tuple[int, ...]:
        """`(num_trajectories, T, C, *spatial)` of the mixture."""
        return tuple(self.trajectories.shape)

    @property
    def row_systems(self) -> tuple[str, ...]:
        """The system of each row of the mixture."""
        return tuple(
            name for name, count in zip(self.systems, self.row_counts) for _ in range(count)
        )
