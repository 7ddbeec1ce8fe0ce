"""The validity filter: is a sampled trajectory a bounded, stationary, chaotic
attractor? One small function per check; `ValidityFilter` runs them in order and
names the first that fails."""

import math
from typing import Optional, final

import numpy as np
from jaxtyping import Float

from .._argument_checks import check_positive_int

# In the order the checks run; a rejected trajectory is counted under its first reason.
REJECTION_REASONS = (
    "non_finite",
    "unbounded",
    "fixed_point",
    "non_stationary",
    "linear",
    "not_chaotic",
    "few_spectral_peaks",
)
"""The names under which the validity filter counts rejections, in the order its
checks run (see [`trainax_fm.systems.ValidityFilter`][])."""


def zero_one_test(
    series: Float[np.ndarray, " time"],
    *,
    num_frequencies: int = 100,
    cutoff_fraction: float = 0.1,
) -> float:
    """The 0-1 test for chaos (Gottwald and Melbourne, 2004/2009): `K` near 1 for a
    chaotic series, near 0 for a regular (periodic or quasi-periodic) one.

    For a frequency `c`, the translation variables
    `p_c(n) = sum_{j=1..n} phi(j) cos(j c)`, `q_c(n) = sum_{j=1..n} phi(j) sin(j c)`
    grow like a random walk (diffusively) for chaotic `phi` and stay bounded for
    regular `phi`. With `N` samples and `n_cut = floor(cutoff_fraction * N)`, the
    mean square displacement for `n = 1..n_cut` is

    `M_c(n) = 1/(N - n_cut) sum_{j=1..N-n_cut} (p_c(j+n) - p_c(j))^2 + (q_c(j+n) - q_c(j))^2`,

    the modified displacement removes its oscillating term,
    `D_c(n) = M_c(n) - mean(phi)^2 (1 - cos(n c)) / (1 - cos c)`, and
    `K_c = corr(n, D_c(n))` (Pearson, over `n = 1..n_cut`). `K` is the median of `K_c`
    over `num_frequencies` frequencies evenly spaced in `[pi/5, 4 pi/5]` (a fixed
    grid, so `K` is a deterministic function of the series; the median discards the
    rare resonant `c`).

    Sample the series coarsely enough that consecutive values are not nearly equal
    (oversampled flows look regular to the test): about one to a few samples per
    oscillation of the signal.

    **Arguments:**

    - `series`: the observable `phi`, at least 20 samples.
    - `num_frequencies`: how many `c`.
    - `cutoff_fraction`: `n_cut / N`, in `(0, 0.5]`.

    **Returns:**

    - `K` in `[-1, 1]`.
    """
    phi = np.asarray(series, dtype=np.float64)
    if phi.ndim != 1 or phi.shape[0] < 20:
        raise ValueError(
            f"`series` must be a 1D array of at least 20 samples, got shape {phi.shape}."
        )
    if not np.all(np.isfinite(phi)):
        raise ValueError("`series` must be finite.")
    num_frequencies = check_positive_int(num_frequencies, "num_frequencies")
    if not 0 < cutoff_fraction <= 0.5:
        raise ValueError(f"`cutoff_fraction` must be in (0, 0.5], got {cutoff_fraction!r}.")
    n_total = phi.shape[0]
    n_cut = max(2, int(cutoff_fraction * n_total))
    steps = np.arange(1, n_cut + 1)
    j = np.arange(1, n_total + 1)
    c = np.linspace(np.pi / 5, 4 * np.pi / 5, num_frequencies)
    # (frequencies, N) translation variables
    p = np.cumsum(phi * np.cos(np.outer(c, j)), axis=1)
    q = np.cumsum(phi * np.sin(np.outer(c, j)), axis=1)
    num_terms = n_total - n_cut
    mean_square = np.stack(
        [
            np.mean(
                (p[:, n : n + num_terms] - p[:, :num_terms]) ** 2
                + (q[:, n : n + num_terms] - q[:, :num_terms]) ** 2,
                axis=1,
            )
            for n in steps
        ],
        axis=1,
    )
    oscillation = np.mean(phi) ** 2 * (1 - np.cos(np.outer(c, steps))) / (1 - np.cos(c))[:, None]
    displacement = mean_square - oscillation
    centred_n = steps - steps.mean()
    centred_d = displacement - displacement.mean(axis=1, keepdims=True)
    denominator = np.sqrt(np.sum(centred_n**2) * np.sum(centred_d**2, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(denominator > 0, centred_d @ centred_n / denominator, 0.0)
    return float(np.median(k))


def _is_non_finite(trajectory: np.ndarray) -> bool:
    return bool(np.isnan(trajectory).any())


def _is_unbounded(trajectory: np.ndarray, bound: float) -> bool:
    return bool(np.isinf(trajectory).any() or np.max(np.abs(trajectory)) > bound)


def _is_fixed_point(trajectory: np.ndarray, tolerance: float) -> bool:
    """The late half barely moves: its spread is tiny against the state's size."""
    late = trajectory[trajectory.shape[0] // 2 :]
    scale = max(1.0, float(np.max(np.abs(late))))
    return bool(np.max(np.std(late, axis=0)) < tolerance * scale)


def _is_non_stationary(trajectory: np.ndarray, tolerance: float) -> bool:
    """The two halves have different means or spreads, in units of the overall spread."""
    half = trajectory.shape[0] // 2
    first, second = trajectory[:half], trajectory[half:]
    spread = np.std(trajectory, axis=0) + 1e-12
    mean_shift = np.abs(first.mean(axis=0) - second.mean(axis=0)) / spread
    ratio = (np.std(first, axis=0) + 1e-12) / (np.std(second, axis=0) + 1e-12)
    return bool(np.max(mean_shift) > tolerance or np.max(np.abs(np.log(ratio))) > tolerance)


def _is_linear(trajectory: np.ndarray, threshold: float) -> bool:
    """The first principal component holds nearly all the variance (a line)."""
    if trajectory.shape[1] < 2:
        return False
    variances = np.linalg.eigvalsh(np.cov(trajectory, rowvar=False))
    return bool(variances[-1] >= threshold * np.sum(variances))


def _zero_one_stride(series: np.ndarray) -> int:
    """Samples between the values the 0-1 test sees: the first lag at which the
    autocorrelation falls below 1/2, so that consecutive values decorrelate."""
    centred = series - series.mean()
    size = 1 << (2 * centred.shape[0] - 1).bit_length()
    spectrum = np.fft.rfft(centred, size)
    correlation = np.fft.irfft(np.abs(spectrum) ** 2, size)[: centred.shape[0] // 2]
    below = np.nonzero(correlation < 0.5 * correlation[0])[0]
    return int(below[0]) if below.size else 1


MIN_ZERO_ONE_SAMPLES = 50


def _is_not_chaotic(trajectory: np.ndarray, threshold: float) -> bool:
    """The 0-1 test of each coordinate, subsampled to decorrelate; chaotic if any
    coordinate is (a chaotic flow may have a nearly periodic coordinate)."""
    largest = -1.0
    for series in trajectory.T:
        if np.ptp(series) == 0:
            continue
        thinned = series[:: _zero_one_stride(series)]
        if thinned.shape[0] >= MIN_ZERO_ONE_SAMPLES:
            largest = max(largest, zero_one_test(thinned))
    # Too few decorrelated samples everywhere: not shown to be chaotic.
    return largest < threshold


def _count_spectral_peaks(series: np.ndarray, relative_height: float) -> int:
    """Local maxima of the power spectrum above `relative_height` times its largest."""
    power = np.abs(np.fft.rfft(series - series.mean())) ** 2
    inner = power[1:-1]
    peaks = (inner > power[:-2]) & (inner > power[2:]) & (inner >= relative_height * power.max())
    return int(np.sum(peaks))


def _has_few_spectral_peaks(trajectory: np.ndarray, minimum: int, relative_height: float) -> bool:
    counts = [
        _count_spectral_peaks(trajectory[:, i], relative_height) for i in range(trajectory.shape[1])
    ]
    return max(counts) < minimum


@final
class ValidityFilter:
    """Checks that a trajectory samples a bounded, stationary, chaotic attractor.

    The checks run in this order, and a trajectory is rejected for the first that
    fails (the names are [`trainax_fm.systems.REJECTION_REASONS`][]):

    1. `"non_finite"`: a NaN (the solver failed).
    2. `"unbounded"`: an `inf` (the trajectory left the integrator's box) or
        `max |x| > bound`.
    3. `"fixed_point"`: in the second half, every coordinate's standard deviation is
        below `fixed_point_tolerance * max(1, max |x|)`.
    4. `"non_stationary"`: between the first and the second half, a coordinate's
        mean moves by more than `stationarity_tolerance` overall standard deviations,
        or its standard deviation changes by a factor above
        `exp(stationarity_tolerance)` (a transient, a slow drift).
    5. `"linear"`: the largest principal component holds at least
        `linear_variance_fraction` of the variance (the trajectory lies near a line).
    6. `"not_chaotic"`: the 0-1 test for chaos
        ([`trainax_fm.systems.zero_one_test`][]) gives `K < chaos_threshold` for
        every coordinate (limit cycles, tori). Each coordinate is subsampled at the
        lag where its autocorrelation first falls below 1/2; a coordinate left with
        fewer than 50 samples is not tested, and a trajectory with no tested
        coordinate is rejected (too short to show chaos).
    7. `"few_spectral_peaks"`: every coordinate's power spectrum has fewer than
        `min_spectral_peaks` local maxima above `peak_relative_height` times its
        largest value (a periodic signal concentrates its power in a few lines).

    Use trajectories of at least a thousand samples, at several samples per
    oscillation (the built-in systems' `dt`), that span at least some 20
    oscillations: the 0-1 test tells a limit cycle from chaos only when its
    displacement window (a tenth of the decorrelated samples) covers a few periods.

    **Arguments:**

    - `bound`: the largest `|x|` allowed.
    - `fixed_point_tolerance`: see check 3.
    - `stationarity_tolerance`: see check 4.
    - `linear_variance_fraction`: see check 5, in `(0, 1]`.
    - `chaos_threshold`: see check 6, in `(0, 1)`.
    - `min_spectral_peaks`, `peak_relative_height`: see check 7.
    """

    __slots__ = (
        "bound",
        "fixed_point_tolerance",
        "stationarity_tolerance",
        "linear_variance_fraction",
        "chaos_threshold",
        "min_spectral_peaks",
        "peak_relative_height",
    )

    bound: float
    fixed_point_tolerance: float
    stationarity_tolerance: float
    linear_variance_fraction: float
    chaos_threshold: float
    min_spectral_peaks: int
    peak_relative_height: float

    def __init__(
        self,
        *,
        bound: float = 1e4,
        fixed_point_tolerance: float = 1e-3,
        stationarity_tolerance: float = 1.0,
        linear_variance_fraction: float = 0.99,
        chaos_threshold: float = 0.5,
        min_spectral_peaks: int = 3,
        peak_relative_height: float = 1e-3,
    ):
        values = {
            "bound": (bound, 0, math.inf),
            "fixed_point_tolerance": (fixed_point_tolerance, 0, math.inf),
            "stationarity_tolerance": (stationarity_tolerance, 0, math.inf),
            "linear_variance_fraction": (linear_variance_fraction, 0, 1),
            "chaos_threshold": (chaos_threshold, 0, 1),
            "peak_relative_height": (peak_relative_height, 0, 1),
        }
        for name, (value, low, high) in values.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and low < value <= high)
            ):
                raise ValueError(
                    f"`{name}` must be a finite number in ({low}, {high}], got {value!r}."
                )
            object.__setattr__(self, name, float(value))
        object.__setattr__(
            self,
            "min_spectral_peaks",
            check_positive_int(min_spectral_peaks, "min_spectral_peaks", minimum=0),
        )

    def __setattr__(self, name, value):
        raise AttributeError("ValidityFilter is frozen; create a new one.")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ValidityFilter({fields})"

    def __reduce__(self):
        return (_rebuild_filter, (self.as_dict(),))

    def as_dict(self) -> dict:
        """The thresholds, by name (recorded in a catalogue's metadata)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __call__(self, trajectory: Float[np.ndarray, "time dimension"]) -> Optional[str]:
        """The first failed check's name (one of `REJECTION_REASONS`), or `None` if
        `trajectory` `(T, D)` passes every check."""
        trajectory = np.asarray(trajectory, dtype=np.float64)
        if trajectory.ndim != 2 or trajectory.shape[0] < 40:
            raise ValueError(
                "the validity filter needs a trajectory shaped (T, D) with T >= 40 "
                f"samples, got shape {trajectory.shape}."
            )
        if _is_non_finite(trajectory):
            return "non_finite"
        if _is_unbounded(trajectory, self.bound):
            return "unbounded"
        if _is_fixed_point(trajectory, self.fixed_point_tolerance):
            return "fixed_point"
        if _is_non_stationary(trajectory, self.stationarity_tolerance):
            return "non_stationary"
        if _is_linear(trajectory, self.linear_variance_fraction):
            return "linear"
        if _is_not_chaotic(trajectory, self.chaos_threshold):
            return "not_chaotic"
        if _has_few_spectral_peaks(trajectory, self.min_spectral_peaks, self.peak_relative_height):
            return "few_spectral_peaks"
        return None


def _rebuild_filter(thresholds: dict) -> ValidityFilter:
    return ValidityFilter(**thresholds)
