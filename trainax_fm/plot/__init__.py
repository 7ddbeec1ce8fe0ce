"""Plots of training runs and rollouts: losses, errors, space-time, spectra, GIFs.

All functions take NumPy or JAX arrays in the shape conventions of
[`trainax_fm.rollout`][] and [`trainax_fm.metrics`][]: a *state* is `(C, *spatial)`,
a *trajectory* `(T, C, *spatial)`. Entry `t` of a trajectory is placed at time
`(t + 1) * dt` (the rollout output without the initial condition), or at `t * dt`
with `include_init=True`.

**Figures.** Every function builds a `matplotlib.figure.Figure` directly, without
pyplot: nothing is shown, no global figure state is kept (no figures to close), and
it works with any backend, including headless `Agg`. Each returns the figure: in a
notebook it is displayed when it is the cell's result; elsewhere pass `save=path` to
write it (PNG unless the suffix says otherwise). Files are written atomically, into a
temporary file next to the target that then replaces it, so a reader never sees a
partial image. Single-axes plots accept `ax=` to draw into an existing figure.

**Seed statistics.** `loss_history` and `error_over_time` draw several runs of one
method (seeds) as their median with a shaded quantile band (interquartile by default).

**Optional dependency.** matplotlib is imported only when a plot is made, never by
`import trainax_fm`; without it the functions raise an `ImportError` telling how to
install it (`pip install "trainax_fm[plot]"`). `animate_rollout` also needs Pillow,
which comes with matplotlib.

**Functions.**

- `loss_history`: training losses over updates.
- `error_over_time`: a per-step error metric over rollout time, per method.
- `spacetime`: a 1D rollout as a space-time image, with reference and difference.
- `snapshots_2d`: a grid of 2D snapshots, rows prediction / reference.
- `energy_spectra`: overlaid log-log energy spectra of states.
- `animate_rollout`: an animated GIF of a 1D or 2D rollout.

**3D fields.** `snapshots_2d` and `animate_rollout` draw a 3D trajectory
`(T, C, X, Y, Z)` on one plane: a slice (`slice_at`, by default the middle one, across
`slice_axis`, by default the last) or a projection along the axis (`slice_at="mean"` or
`"max"`). `energy_spectra` takes 3D states as they are (shell-summed spectra).
- `validation_history`: the validation metrics of a run, with its best model.
"""

from ._animation import animate_rollout as animate_rollout
from ._error_over_time import error_over_time as error_over_time
from ._loss_history import loss_history as loss_history
from ._snapshots import snapshots_2d as snapshots_2d
from ._spacetime import spacetime as spacetime
from ._spectra import energy_spectra as energy_spectra
from ._validation_history import validation_history as validation_history
