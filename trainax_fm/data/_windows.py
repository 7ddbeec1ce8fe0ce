"""Lazy windows: sub-trajectories gathered by index instead of materialised copies."""

import math
from typing import Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float, Int, PyTree

from .._argument_checks import (
    check_bool,
    check_positive_int,
    check_trajectories,
    is_traced,
)
from ._conditioned import ConditionedTrajectories, ConditionedWindows
from ._disk import DiskTrajectories
from ._system_mixture import SystemMixture


def check_finite(data: PyTree, name: str = "data_trajectories") -> None:
    """Reject NaN/Inf in concrete data, naming the first trajectory and time index."""
    if is_traced(data):
        return
    leaves_with_path, _ = jtu.tree_flatten_with_path(data)
    for path, leaf in leaves_with_path:
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            continue
        finite = np.asarray(jnp.all(jnp.isfinite(leaf), axis=tuple(range(2, leaf.ndim))))
        if not finite.all():
            trajectory, time = (int(i) for i in np.argwhere(~finite)[0])
            where = jtu.keystr(path) or ""
            raise ValueError(
                f"`{name}{where}` contains NaN or Inf, first at trajectory {trajectory}, "
                f"time index {time}. Clean or drop that trajectory before training."
            )


# Flat offsets are int32: larger arrays are sliced per (trajectory, time) instead.
MAX_FLAT_GATHER_SIZE = 2**31 - 1

class TrajectorySubStacker(eqx.Module):
    """All windows of length `sub_trajectory_len` of a set of trajectories.

    Unlike trainax, the windows are not materialised: the trajectories are stored once
    together with a table of `(trajectory, start)` pairs, and `__call__` gathers the
    requested windows (inside `jit` too). Memory is the data once, whatever the window
    length.

    Window order is trajectory-major: window `i*K + k` starts at time `k` of trajectory
    `i`, with `K = T - sub_trajectory_len + 1` windows per trajectory.

    **Arguments:**

    - `data_trajectories`: array `(S, T, C, *spatial)` or a PyTree of arrays sharing the
        leading `(S, T)` axes; or a [`trainax_fm.data.DiskTrajectories`][], whose
        windows are then read from the file on the host (`__call__` needs concrete
        indices; the trainers read minibatches ahead of the updates); or a
        [`trainax_fm.data.SystemMixture`][] (its rows, in memory or on disk).
    - `sub_trajectory_len`: window length `W` (for `R` unrolled steps use `R + 1`).
    - `do_sub_stacking`: if `False`, only the first window of each trajectory is used.
    - `only_store_ic`: if `True`, windows are cut down to their first snapshot (length 1),
        for configurations that only need the initial condition.
    - `num_output_steps`: `k`, for steppers that predict `k` states per call
        ([`trainax_fm.BlockStepper`][]): windows of `sub_trajectory_len` snapshots
        (a multiple of `k`) are presented as `sub_trajectory_len / k` *blocks*, each
        the `k` consecutive states stacked on the channel axis, `(k*C, *spatial)`.
        Windows still start at every snapshot.

    With [`trainax_fm.ConditionedTrajectories`][] the gathered windows are a
    `ConditionedWindows` (the windows and the constants of their trajectories).
    """

    data_trajectories: Union[
        PyTree[Float[Array, "num_trajectories time ..."]], ConditionedTrajectories, DiskTrajectories
    ]
    # `None` for data on disk: window `i` is then `divmod(i, windows_per_trajectory)`.
    window_table: Optional[Int[Array, "num_windows 2"]]
    sub_trajectory_len: int = eqx.field(static=True)
    window_length: int = eqx.field(static=True)
    num_total_samples: int = eqx.field(static=True)
    num_output_steps: int = eqx.field(static=True)
    windows_per_trajectory: int = eqx.field(static=True)

    def __init__(
        self,
        data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]],
        sub_trajectory_len: int,
        *,
        do_sub_stacking: bool = True,
        only_store_ic: bool = False,
        num_output_steps: int = 1,
    ):
        if isinstance(data_trajectories, SystemMixture):  # its rows are the source
            data_trajectories = data_trajectories.trajectories
        conditioned = isinstance(data_trajectories, ConditionedTrajectories)
        on_disk = isinstance(data_trajectories, DiskTrajectories)
        trajectories = data_trajectories.trajectories if conditioned else data_trajectories
        if on_disk:
            num_trajectories, num_time_steps = data_trajectories.shape[:2]
        else:
            num_trajectories, num_time_steps = check_trajectories(trajectories)
        sub_trajectory_len = check_positive_int(sub_trajectory_len, "sub_trajectory_len")
        check_bool(do_sub_stacking, "do_sub_stacking")
        check_bool(only_store_ic, "only_store_ic")
        num_output_steps = check_positive_int(num_output_steps, "num_output_steps")
        if sub_trajectory_len % num_output_steps:
            raise ValueError(
                f"`sub_trajectory_len` ({sub_trajectory_len}) must be a multiple of "
                f"`num_output_steps` ({num_output_steps}): windows are cut into blocks "
                f"of {num_output_steps} states."
            )
        if sub_trajectory_len > num_time_steps:
            raise ValueError(
                f"`sub_trajectory_len` ({sub_trajectory_len}) is longer than the "
                f"trajectories (T = {num_time_steps} snapshots). Use at most "
                f"{num_time_steps}, i.e. fewer rollout steps, or longer trajectories."
            )
        windows_per_trajectory = (
            num_time_steps - sub_trajectory_len + 1 if do_sub_stacking else 1
        )
        if on_disk:  # reading the whole file to check it would defeat its purpose
            if num_output_steps > 1:
                raise ValueError(
                    "`num_output_steps` > 1 (block steppers) needs trajectories in memory; "
                    "read the on-disk trajectories with `.read()` first."
                )
            self.window_table = None
        else:
            check_finite(trajectories)
            if not conditioned:
                # NumPy leaves cannot be indexed by traced indices inside jit.
                data_trajectories = jtu.tree_map(jnp.asarray, data_trajectories)
            trajectory_index, start_index = np.meshgrid(
                np.arange(num_trajectories), np.arange(windows_per_trajectory), indexing="ij"
            )
            table = np.stack([trajectory_index.ravel(), start_index.ravel()], axis=-1)
            self.window_table = jnp.asarray(table, dtype=jnp.int32)
        self.data_trajectories = data_trajectories
        self.sub_trajectory_len = sub_trajectory_len
        self.num_output_steps = num_output_steps
        # Counted in blocks (states when num_output_steps == 1): what configurations see.
        self.window_length = 1 if only_store_ic else sub_trajectory_len // num_output_steps
        self.num_total_samples = num_trajectories * windows_per_trajectory
        self.windows_per_trajectory = windows_per_trajectory

    @property
    def on_disk(self) -> bool:
        """Whether the windows are read from a file on the host."""
        return isinstance(self.data_trajectories, DiskTrajectories)

    def read_windows(self, reader, indices: Int[np.ndarray, " n"]) -> np.ndarray:
        """The windows `indices` of on-disk data, read on the host with `reader` (a
        [`trainax_fm.data.WindowReader`][] of `data_trajectories`)."""
        trajectory, start = np.divmod(np.asarray(indices), self.windows_per_trajectory)
        return reader.read_windows(trajectory, start, self.window_length)

    def __call__(
        self, indices: Union[Int[Array, " n"], slice, list]
    ) -> PyTree[Float[Array, "n window ..."]]:
        """Gather windows by their index.

        **Arguments:**

        - `indices`: integer array, list or `slice` of window indices, or one integer.

        **Returns:**

        - The windows, shaped `(len(indices), W, C, *spatial)` (per leaf); a single
          window `(W, C, *spatial)` for an integer index. With `num_output_steps=k`:
          `(len(indices), W/k, k*C, *spatial)`. With conditioned trajectories: a
          `ConditionedWindows` of these windows and their trajectories' constants.
        """
        if isinstance(indices, slice):
            indices = np.arange(self.num_total_samples)[indices]
        if self.on_disk:
            if is_traced(indices):
                raise TypeError(
                    "windows of on-disk data are read on the host: pass concrete indices, "
                    "not traced ones (the trainers read each minibatch ahead of its update)."
                )
            indices = np.asarray(indices)
            with self.data_trajectories.open() as reader:
                windows = self.read_windows(reader, indices.reshape(-1))
            return jnp.asarray(windows.reshape(indices.shape + windows.shape[1:]))
        indices = jnp.asarray(indices, dtype=jnp.int32)
        if indices.ndim == 0:  # a single window, without the batch axis
            return jtu.tree_map(lambda x: x[0], self(indices[None]))
        trajectory, start = self.window_table[indices, 0], self.window_table[indices, 1]
        num_snapshots = self.window_length * self.num_output_steps

        def gather(leaf):
            state_size = math.prod(leaf.shape[2:])
            window_size = num_snapshots * state_size
            if leaf.size <= MAX_FLAT_GATHER_SIZE:
                # A window is one contiguous run of the row-major trajectories: slicing
                # the flat array makes a copy-like gather (about 2x faster on a CPU than
                # an N-d slice), and batching (also over seeds) keeps it one gather.
                flat = leaf.reshape(-1)
                offsets = (trajectory * leaf.shape[1] + start) * state_size
                windows = jax.vmap(
                    lambda o: jax.lax.dynamic_slice_in_dim(flat, o, window_size)
                )(offsets)
            else:

                def one(i, s):  # int32 offsets would overflow: slice (trajectory, time)
                    zeros = (0,) * (leaf.ndim - 2)
                    sizes = (1, num_snapshots) + leaf.shape[2:]
                    return jax.lax.dynamic_slice(leaf, (i, s) + zeros, sizes)[0]

                windows = jax.vmap(one)(trajectory, start)
            # k consecutive (C, *spatial) states are contiguous: a block is a reshape.
            block = (self.num_output_steps * leaf.shape[2],) + leaf.shape[3:]
            return windows.reshape((-1, self.window_length) + block)

        if not isinstance(self.data_trajectories, ConditionedTrajectories):
            return jtu.tree_map(gather, self.data_trajectories)
        data = self.data_trajectories
        windows = jtu.tree_map(gather, data.trajectories)
        return ConditionedWindows(windows, data.constants_of(trajectory))

    @property
    def data_sub_trajectories(self) -> PyTree[Float[Array, "num_windows window ..."]]:
        """All windows at once (materialised; for full-dataset evaluation only)."""
        return self(slice(None))
