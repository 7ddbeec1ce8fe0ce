"""Minibatches of on-disk data: read on the host, ahead of the update that uses them.

The indices of update `s` come from the same permutation stream as in memory (the
table is generated on the device from the shuffle key, copied to the host once per
segment, and sliced there by `stream_batch(..., xnp=np)`), so on-disk and in-memory
training see the same windows in the same order. A background thread reads the
windows of the next minibatches and places them on the devices while the current
update runs. Under several processes each process reads only the rows of the
minibatch that its own devices hold, and `jax.make_array_from_process_local_data`
assembles the global batch.
"""

import queue
import threading
from typing import Optional

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from ..data._mixer import StreamPlan, stream_batch
from ..data._windows import TrajectorySubStacker
from ._stream import PermutationStream

# Minibatches read ahead of the one in use: one is enough to hide the read behind the
# update, a second absorbs jitter of the file system.
PREFETCH_DEPTH = 2


def batch_sharding(
    mesh: Optional[jax.sharding.Mesh], batch_axis: str
) -> Optional[jax.sharding.NamedSharding]:
    if mesh is None:
        return None
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(batch_axis))


def process_rows(
    sharding: Optional[jax.sharding.NamedSharding], batch_size: int
) -> tuple[int, int]:
    """The rows `[start, stop)` of a global minibatch that this process's devices hold.

    **Raises:**

    - `ValueError` if they are not one contiguous block (a mesh whose device order
        interleaves processes along the batch axis).
    """
    if sharding is None:
        return 0, batch_size
    index_map = sharding.addressable_devices_indices_map((batch_size,))
    rows = sorted({index[0].indices(batch_size)[:2] for index in index_map.values()})
    for (_, stop), (start, _) in zip(rows, rows[1:]):
        if start != stop:
            raise ValueError(
                f"the devices of process {jax.process_index()} hold the minibatch rows "
                f"{rows}, which are not one block; order the mesh's devices by process "
                "(`jax.make_mesh` does) so that each process reads one block of rows."
            )
    return rows[0][0], rows[-1][1]


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class HostBatches:
    """The minibatches of updates `start, ..., stop - 1` of on-disk data, in order.

    **Arguments:**

    - `stacker`: the windows (with a [`trainax_fm.data.DiskTrajectories`][]).
    - `shuffle_key`: the run's shuffle key (as for in-memory data).
    - `batch_size`: the global minibatch size.
    - `start`, `stop`: the updates to serve.
    - `sharding`: how the minibatch is split over devices (`None`: default device).
    """

    def __init__(
        self,
        stacker: TrajectorySubStacker,
        shuffle_key: PRNGKeyArray,
        batch_size: int,
        start: int,
        stop: int,
        sharding: Optional[jax.sharding.NamedSharding],
    ):
        self.stacker = stacker
        self.batch_size = batch_size
        self.sharding = sharding
        self.rows = process_rows(sharding, batch_size)
        # Its own stream: the loop's stream lives in the main thread.
        plan = StreamPlan(stacker.num_total_samples, batch_size)
        self.stream = PermutationStream(shuffle_key, plan, seeds=False)
        self.host_table: Optional[tuple[int, np.ndarray]] = None
        self.current: Optional[tuple[int, jax.Array]] = None
        self.next_step = start
        self.stop = stop
        self.queue: queue.Queue = queue.Queue(maxsize=PREFETCH_DEPTH)
        self.stopping = threading.Event()
        # Started by the first `get`, so that nothing runs before training does.
        self.thread: Optional[threading.Thread] = None

    def indices(self, step: int) -> np.ndarray:
        """The global window indices of update `step` (the in-memory stream's)."""
        table, _ = self.stream.table_for(step)
        if self.host_table is None or self.host_table[0] != self.stream.first_epoch:
            self.host_table = (self.stream.first_epoch, np.asarray(table))
        return stream_batch(self.host_table[1], self.host_table[0], step, self.batch_size, np)

    def read(self, reader, step: int) -> jax.Array:
        """Read this process's rows of update `step` and assemble the global batch."""
        start, stop = self.rows
        local = self.stacker.read_windows(reader, self.indices(step)[start:stop])
        if self.sharding is None:
            return jax.device_put(local)
        global_shape = (self.batch_size,) + local.shape[1:]
        return jax.make_array_from_process_local_data(self.sharding, local, global_shape)

    def _produce(self, start: int, stop: int) -> None:
        try:
            with self.stacker.data_trajectories.open() as reader:
                for step in range(start, stop):
                    if not self._put((step, self.read(reader, step))):
                        return
        except BaseException as error:  # handed to the training thread, raised there
            self._put(_Failure(error))

    def _put(self, item) -> bool:
        """Queue `item` unless the consumer has closed; whether it was queued."""
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, step: int) -> jax.Array:
        """The minibatch of update `step`: the current one again, the next one from the
        prefetch queue, or any other one (e.g. a hook looking at the batch after the
        last update) read now."""
        if self.current is not None and self.current[0] == step:
            return self.current[1]
        if step != self.next_step or step >= self.stop:
            with self.stacker.data_trajectories.open() as reader:
                return self.read(reader, step)
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._produce, args=(step, self.stop), name="trainax_fm-prefetch",
                daemon=True,
            )
            self.thread.start()
        item = self.queue.get()
        if isinstance(item, _Failure):
            raise RuntimeError(
                f"reading the minibatch of update {step} from "
                f"{self.stacker.data_trajectories.path!r} failed"
            ) from item.error
        self.current = item
        self.next_step = step + 1
        return item[1]

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
