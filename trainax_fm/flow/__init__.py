r"""Flow matching for probabilistic autoregressive emulators.

Instead of mapping the previous state `y` to the next state deterministically, a
flow-matching emulator *samples* the next state `x_1` from its conditional
distribution given `y`: noise `x_0 ~ N(0, I)` is transported to `x_1` by the ODE
`dx/dt = v(x, y, t)` from flow time `t = 0` (noise) to `t = 1` (data). The velocity is
learned by regressing `v(x_t, y, t)` on `x_1 - x_0` at the straight interpolant
`x_t = t x_1 + (1 - t) x_0` ([`trainax_fm.configuration.FlowMatching`][]).

Building blocks:

- [`trainax_fm.flow.ConditionalVelocity`][]: turns any channels-first network into
    `v(x_t, y, t)` by concatenating `[x_t, y, t]` (and optionally a step size `d`) on
    the channel axis; [`trainax_fm.flow.velocity_input_channels`][] sizes the network.
- Fixed-step solvers [`trainax_fm.flow.Euler`][], [`trainax_fm.flow.Midpoint`][],
    [`trainax_fm.flow.Heun`][] with an explicit number of steps and network
    evaluations ([`trainax_fm.flow.integrate`][],
    [`trainax_fm.flow.num_function_evaluations`][]).
- [`trainax_fm.flow.FlowMap`][]: `F_d(x, t) = x + d v + d^2 (phi - v)` for semigroup
    distillation; at initialisation exactly one Euler step, `F_0` the identity
    ([`trainax_fm.flow.with_step_size_input`][] and
    [`trainax_fm.flow.extend_input_channels`][] build `phi` from `v`).
- [`trainax_fm.flow.EMAFlowMap`][]: a flow map with an exponential moving average
    of its weights for the semigroup target; [`trainax_fm.flow.flow_map_optimizer`][]
    freezes `v` and moves the average.
- Stochastic steppers [`trainax_fm.flow.FlowMatchingStepper`][] and
    [`trainax_fm.flow.FlowMapStepper`][]: `stepper(y, key=key)` draws fresh noise and
    integrates, so they roll out with `trainax_fm.rollout(..., key=key)`.

- [`trainax_fm.flow.StochasticInterpolantStepper`][]: stochastic-interpolant
    forecasting, an SDE from the current state (a point mass) to the next one whose
    diffusion can be chosen after training
    ([`trainax_fm.configuration.StochasticInterpolant`][]).
- [`trainax_fm.flow.PDERefinerStepper`][]: PDE-Refiner's sampler, a one-step
    prediction refined `K` times by denoising at decreasing noise levels, the network
    conditioned on the refinement step `k/K` where a velocity sees its flow time
    (trained by [`trainax_fm.configuration.PDERefiner`][]; `K + 1` evaluations).

- [`trainax_fm.flow.EMAVelocity`][]: a step-size-conditioned velocity with an EMA of
    its weights, for the EMA targets of shortcut models;
    [`trainax_fm.flow.EMAFlowMatchingStepper`][] trains it and samples with the average.

Stable long rollouts of any emulator: [`trainax_fm.flow.Thermalizer`][], a DDPM of
the system's stationary distribution with a noise-level classifier (trained with
[`trainax_fm.configuration.ThermalizerDiffusion`][]), and
[`trainax_fm.flow.ThermalizedStepper`][], which denoises the emulator's state whenever
the classifier finds it too noisy (Pedersen, Zanna and Bruna 2025).

Few-step sampling comes from distillation: progressive
([`trainax_fm.configuration.ProgressiveDistillation`][]) and semigroup
([`trainax_fm.configuration.SemigroupDistillation`][]), or from the two-time flow maps
`X_(t,t+d)(x) = x + d u(x, y, t, d)` of a step-size-conditioned velocity `u`, sampled
by `FlowMatchingStepper(u, n)` with `n` network evaluations: Lagrangian
self-distillation ([`trainax_fm.configuration.LagrangianSelfDistillation`][]),
MeanFlow ([`trainax_fm.configuration.MeanFlow`][]) and shortcut models
([`trainax_fm.configuration.ShortcutModel`][]).
"""

from ._ema import AbstractEMA as AbstractEMA
from ._ema import EMAFlowMap as EMAFlowMap
from ._ema import EMAVelocity as EMAVelocity
from ._extend import extend_input_channels as extend_input_channels
from ._extend import with_step_size_input as with_step_size_input
from ._flow_map import FlowMap as FlowMap
from ._integrate import flow_step as flow_step
from ._integrate import integrate as integrate
from ._integrate import num_function_evaluations as num_function_evaluations
from ._optimizer import flow_map_optimizer as flow_map_optimizer
from ._refiner import PDERefinerStepper as PDERefinerStepper
from ._solvers import AbstractSolver as AbstractSolver
from ._solvers import Euler as Euler
from ._solvers import Heun as Heun
from ._solvers import Midpoint as Midpoint
from ._steppers import AbstractFlowStepper as AbstractFlowStepper
from ._steppers import EMAFlowMatchingStepper as EMAFlowMatchingStepper
from ._steppers import FlowMapStepper as FlowMapStepper
from ._steppers import FlowMatchingStepper as FlowMatchingStepper
from ._interpolant_stepper import StochasticInterpolantStepper as StochasticInterpolantStepper
from ._velocity import ConditionalVelocity as ConditionalVelocity
from ._velocity import velocity_input_channels as velocity_input_channels
from ._thermalized_stepper import ThermalizedRollout as ThermalizedRollout
from ._thermalized_stepper import ThermalizedStepper as ThermalizedStepper
from ._thermalizer import Thermalizer as Thermalizer
