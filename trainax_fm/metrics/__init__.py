"""Metrics to evaluate autoregressive emulators against reference trajectories.

Every metric is a pure function of arrays: it can be `jax.jit`-ed, `jax.vmap`-ed and
differentiated. Each one is wrapped in `eqx.filter_jit`, so an eager call compiles once
per input shape; array arguments are traced, while Python values (flags such as
`batched`, `band_edges`, `num_steps`, axes, and scalar thresholds) are static and are
checked with clear errors before anything is computed.

**Shapes.** A *state* is `(C, *spatial)` (an ODE state is `(C,)`); a *trajectory* is
`(T, C, *spatial)`, as returned by `trainax_fm.rollout`. Per-step metrics take one
trajectory, or a batch `(B, T, C, *spatial)` when called with `batched=True` (the same
flag as in `rollout`; the rank alone cannot tell a batch of 1D trajectories from one 2D
trajectory). They return one value per step, shape `(T,)`; batched results are the
mean over the batch of the per-sample values. For a single state use `state[None]`.

**Channels.** Channels and space are combined jointly: norms and means run over all
channel and spatial entries of a state at once (as the time-level losses do), and
spectra are summed over channels.

**Metric families.**

- Pointwise errors: `mse`, `rmse`, `nrmse`, and the APEBench aggregate
    `geometric_mean_nrmse`.
- Correlation: `pearson_correlation` per step and `high_correlation_time` (in steps).
- Fourier space (periodic grids): `energy_spectrum`, `spectral_error` per wavenumber
    band (`octave_band_edges`), `sobolev_error` and `h1_error`.
- Chaotic systems: `valid_prediction_time` (in time units or Lyapunov times; by nRMSE
    or by running sMAPE).
- Forecasts at cumulative horizons: `forecast_metrics` (MSE, MAE, sMAPE and Spearman
    correlation over the first `h` steps for each horizon `h`), `smape` per step,
    `spearman_correlation`.
- Long runs (after at least a few Lyapunov times): `long_run_distribution_distance`,
    `long_run_spectrum_error` (spatial spectra), `power_spectrum_distance` (temporal
    spectra, e.g. of ODE rollouts), `blow_up_fraction`.
- Ensembles and distributions: `crps`, `spread_skill_ratio`, `interval_coverage`,
    `energy_distance`, `mmd`, `sinkhorn_divergence`. The ensemble metrics take members along
    `ensemble_axis` and an observation of the remaining shape (e.g.
    `rollout(..., num_samples=M)` against the reference trajectory).
"""

from ._chaos import valid_prediction_time as valid_prediction_time
from ._correlation import (
    high_correlation_time as high_correlation_time,
    pearson_correlation as pearson_correlation,
)
from ._ensemble import (
    crps as crps,
    energy_distance as energy_distance,
    interval_coverage as interval_coverage,
    spread_skill_ratio as spread_skill_ratio,
)
from ._errors import (
    geometric_mean_nrmse as geometric_mean_nrmse,
    mse as mse,
    nrmse as nrmse,
    rmse as rmse,
)
from ._forecast import (
    forecast_metrics as forecast_metrics,
    smape as smape,
    spearman_correlation as spearman_correlation,
)
from ._long_run import (
    blow_up_fraction as blow_up_fraction,
    long_run_distribution_distance as long_run_distribution_distance,
    long_run_spectrum_error as long_run_spectrum_error,
    power_spectrum_distance as power_spectrum_distance,
)
from ._mmd import mmd as mmd
from ._sinkhorn import sinkhorn_divergence as sinkhorn_divergence
from ._spectrum import (
    energy_spectrum as energy_spectrum,
    h1_error as h1_error,
    octave_band_edges as octave_band_edges,
    sobolev_error as sobolev_error,
    spectral_error as spectral_error,
)
