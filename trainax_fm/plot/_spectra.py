"""Log-log energy spectra of one or several states, overlaid."""

from typing import Any, Optional, Sequence

import numpy as np

from ..metrics import energy_spectrum
from ._common import (
    as_real_array,
    check_rank,
    figure_and_axes,
    finish_curve_plot,
    normalize_labels,
    split_mapping,
)

_FUNC = "energy_spectra"


def energy_spectra(
    states: Any,
    *,
    labels: Optional[Sequence[str]] = None,
    ax: Any = None,
    save: Any = None,
    title: Optional[str] = None,
) -> Any:
    """Overlay the energy spectra of states on log-log axes.

    Each spectrum is [`trainax_fm.metrics.energy_spectrum`][]: the power per integer
    wavenumber shell, summed over channels, of a periodic state `(C, *spatial)` (1D,
    2D or 3D, with `N` points per axis). Shells `1 .. N//2` are drawn (the mean,
    shell 0, has no place on a log axis; empty shells are not shown). States may have
    different resolutions.

    **Arguments:**

    - `states`: one state `(C, *spatial)` (an array), a list of states, or a mapping
        `label -> state`. A stack of states is not unpacked: pass `list(stack)`, e.g.
        `[prediction[-1], reference[-1]]` for the last step of two trajectories.
    - `labels`: one legend label per state, or `None` (numbered when several).
    - `ax`: a matplotlib Axes to draw into; `None` creates a new figure.
    - `save`: a path to write the figure to (PNG unless the suffix says otherwise),
        written atomically; `None` writes nothing.
    - `title`: an optional axes title.

    **Returns:**

    - The `matplotlib.figure.Figure` holding the plot.

    **Raises:**

    - `ValueError` for a state that is not `(C, *spatial)` with 1 to 3 equal spatial
        axes of at least 2 points, or a label count that does not match.
    """
    entries, labels = split_mapping(states, labels, _FUNC, "states")
    if isinstance(entries, (list, tuple)):
        if not entries:
            raise ValueError(f"{_FUNC}: `states` is an empty list.")
        names = [f"states[{i}]" for i in range(len(entries))]
    else:
        entries, names = [entries], ["states"]
    show_legend = labels is not None or len(entries) > 1
    labels = normalize_labels(labels, len(entries), _FUNC, "state")

    spectra = []
    for entry, name in zip(entries, names):
        array = as_real_array(entry, name, _FUNC)
        check_rank(
            array, (2, 3, 4), name, _FUNC, "(C, *spatial) with 1 to 3 spatial axes",
            "For one time step of a trajectory pass `trajectory[t]`; for a field "
            "without channel axis pass `field[None]`.",
        )
        try:
            spectrum = energy_spectrum(entry if hasattr(entry, "shape") else array)
        except ValueError as err:
            raise ValueError(
                f"{_FUNC}: `{name}` of shape {array.shape}: {err}"
            ) from err
        spectra.append(np.asarray(spectrum, dtype=np.float64))

    fig, ax = figure_and_axes(ax, figsize=(6.0, 4.0))
    for number, (label, spectrum) in enumerate(zip(labels, spectra)):
        shells = np.arange(1, spectrum.shape[0])
        power = np.where(spectrum[1:] > 0, spectrum[1:], np.nan)
        ax.plot(shells, power, label=f"state {number}" if label is None else label,
                linewidth=1.2)
    return finish_curve_plot(
        fig, ax, xlabel="wavenumber shell |k|", ylabel="energy", title=title,
        show_legend=show_legend, save=save, log_x=True, log_y=True,
    )
