"""The fixed channel selection: every system of a catalogue stored with the same
number of channels `C`, whatever its dimension `D`."""

from typing import Optional

import numpy as np
from jaxtyping import Float

from .._argument_checks import check_positive_int

Channel = tuple[int, int]  # (coordinate, delay in samples); delay 0: the coordinate itself


def channel_selection(
    dimension: int,
    num_channels: int,
    *,
    rng: Optional[np.random.Generator] = None,
    delay_steps: int = 5,
) -> tuple[Channel, ...]:
    """Which coordinates (and delays) of a `D`-dimensional system fill `C` channels.

    - `D >= C`: `C` distinct coordinates drawn by `rng` (uniformly, without
        replacement), in increasing order; with `D == C` all coordinates, in order.
    - `D < C`: all `D` coordinates, then delay coordinates of its own components
        (Takens): channel `D + j` holds coordinate `j mod D` delayed by
        `(j // D + 1) * delay_steps` samples, `x_{j mod D}(t - (j // D + 1) tau)`.

    **Arguments:**

    - `dimension`: `D`.
    - `num_channels`: `C`.
    - `rng`: a NumPy `Generator`, needed only when `D > C`.
    - `delay_steps`: the delay `tau` in samples (`D < C`).

    **Returns:**

    - `C` pairs `(coordinate, delay)`, delay in samples (0: no delay). Apply them with
        [`trainax_fm.systems.apply_channel_selection`][].
    """
    dimension = check_positive_int(dimension, "dimension")
    num_channels = check_positive_int(num_channels, "num_channels")
    delay_steps = check_positive_int(delay_steps, "delay_steps")
    if dimension > num_channels:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"choosing {num_channels} of {dimension} coordinates needs `rng`, a "
                f"numpy.random.Generator; got {type(rng).__name__}."
            )
        chosen = np.sort(rng.choice(dimension, num_channels, replace=False))
        return tuple((int(i), 0) for i in chosen)
    own = [(i, 0) for i in range(dimension)]
    delayed = [
        (j % dimension, (j // dimension + 1) * delay_steps) for j in range(num_channels - dimension)
    ]
    return tuple(own + delayed)


def max_delay(selection: tuple[Channel, ...]) -> int:
    """The largest delay of a selection: the samples needed before the first output."""
    return max(delay for _, delay in selection)


def apply_channel_selection(
    trajectory: Float[np.ndarray, "time dimension"],
    selection: tuple[Channel, ...],
) -> Float[np.ndarray, "time_out channels"]:
    """The channels of a selection, from a trajectory that starts `max_delay` samples
    early.

    **Arguments:**

    - `trajectory`: `(T + max_delay(selection), D)`.
    - `selection`: from [`trainax_fm.systems.channel_selection`][].

    **Returns:**

    - `(T, C)`: channel `k` at time `t` is `trajectory[max_delay + t - delay_k,
        coordinate_k]`.
    """
    trajectory = np.asarray(trajectory)
    lead = max_delay(selection)
    if trajectory.ndim != 2 or trajectory.shape[0] <= lead:
        raise ValueError(
            f"`trajectory` must be (T + {lead}, D) with T >= 1 (the selection delays "
            f"up to {lead} samples), got shape {trajectory.shape}."
        )
    if max(coordinate for coordinate, _ in selection) >= trajectory.shape[1]:
        raise ValueError(
            f"the selection uses coordinates up to {max(c for c, _ in selection)}, the "
            f"trajectory has {trajectory.shape[1]}."
        )
    length = trajectory.shape[0] - lead
    return np.stack(
        [
            trajectory[lead - delay : lead - delay + length, coordinate]
            for coordinate, delay in selection
        ],
        axis=1,
    )
