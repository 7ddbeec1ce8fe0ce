"""Sample data: small reference trajectories for tests, examples and tutorials.

Generators return trajectories shaped `(num_samples, temporal_horizon, C, *spatial)`
(for ODEs `(num_samples, temporal_horizon, C)`) with time index 0 the first stored
state, ready for `TrajectorySubStacker` and the trainers. All are `jax.lax.scan`
rollouts that take a `key` keyword and are reproducible for a fixed key.

- [`trainax_fm.sample_data.advection_1d_periodic`][]: exact linear advection of random
    band-limited signals on a periodic 1D grid.
- [`trainax_fm.sample_data.advection_1d_varying_speed`][]: the same with a speed that
    varies across trajectories, returned as their constant scalar
    ([`trainax_fm.ConditionedTrajectories`][]), for parameter-conditioned emulators.
- [`trainax_fm.sample_data.dysts_systems`][] and
    [`trainax_fm.sample_data.dysts_trajectories`][]: the `dysts` catalogue of chaotic
    ODEs, generated locally (optional extra `dysts`).
- [`trainax_fm.sample_data.coarse_kuramoto_sivashinsky`][]: Kuramoto-Sivashinsky
    (2D by default) solved finely with exponax and observed coarsely, so the next
    coarse state is genuinely uncertain (the benchmark data of the flow-matching
    emulators; needs exponax).
- [`trainax_fm.sample_data.make_lorenz_stepper_rk4`][] and
    [`trainax_fm.sample_data.lorenz_rk4`][]: the chaotic Lorenz-63 system with RK4.
- [`trainax_fm.sample_data.make_lorenz96_stepper_rk4`][] and
    [`trainax_fm.sample_data.lorenz96_rk4`][]: the chaotic Lorenz-96 ring of any
    dimension with RK4, as a periodic 1D field `(1, N)`.
"""

from ._advection import advection_1d_periodic as advection_1d_periodic
from ._dysts import dysts_systems as dysts_systems
from ._dysts import dysts_trajectories as dysts_trajectories
from ._kuramoto_sivashinsky import coarse_kuramoto_sivashinsky as coarse_kuramoto_sivashinsky
from ._lorenz import lorenz_rk4 as lorenz_rk4
from ._lorenz import make_lorenz_stepper_rk4 as make_lorenz_stepper_rk4
from ._lorenz96 import lorenz96_rk4 as lorenz96_rk4
from ._lorenz96 import make_lorenz96_stepper_rk4 as make_lorenz96_stepper_rk4
from ._varying_advection import advection_1d_varying_speed as advection_1d_varying_speed
