"""How many updates run per dispatch: chosen from the static cost of one update.

The choice is a pure function of the compiled program (its XLA cost analysis) and the
backend, never of timings: the same run makes the same choice in every process, so a
resumed run continues bit-identically whatever ran before it.

Measured on a 2-core CPU (jax 0.10.2, `benchmarks/bench_engine.py`): updates of up to
~1e6 flops run 7-30x faster inside a compiled loop than one per dispatch (the dispatch
overhead of ~50-130 us dominates them); a convolution network of >3e8 flops per update
runs 1.5-6x slower inside a loop body than in straight-line code on XLA:CPU; dense
networks lose little in a loop. So on CPU: loop below `CONVOLUTION_LOOP_FLOPS` (programs
with convolutions) or `DENSE_LOOP_FLOPS` (others); on GPU/TPU always loop.
"""

from typing import Literal, Union

import numpy as np

from ._compiled import UpdateCost

DispatchMode = Union[int, Literal["auto"]]

# Largest number of updates inside one dispatch (and size of its loss buffer).
MAX_STEPS_PER_DISPATCH = 1024
# Above these flops per update, XLA:CPU runs the update faster one per dispatch.
CONVOLUTION_LOOP_FLOPS = 5e7
DENSE_LOOP_FLOPS = 1e9
# Flops of one dispatch in loop mode (about a quarter second on a CPU core), so the
# progress bar and the non-finite guard hear from the loop a few times a second.
FLOPS_PER_DISPATCH = 2e10


def steps_per_dispatch(cost: UpdateCost, backend: str) -> int:
    """The number of updates per dispatch for an update of this cost.

    **Arguments:**

    - `cost`: the update's static cost.
    - `backend`: `jax.default_backend()`.

    **Returns:**

    - `1` (one update per dispatch, straight-line code) or the size of a compiled loop.
    """
    if backend == "cpu":
        limit = CONVOLUTION_LOOP_FLOPS if cost.has_convolution else DENSE_LOOP_FLOPS
        if cost.flops > limit:
            return 1
    size = FLOPS_PER_DISPATCH / max(cost.flops, 1.0)
    return int(np.clip(size, 2, MAX_STEPS_PER_DISPATCH))

