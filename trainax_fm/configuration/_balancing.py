import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray


class BalancingState(eqx.Module):
    """What [`trainax_fm.configuration.ReLoBRaLo`][] remembers between updates.

    **Arguments:**

    - `weights`: the balancing weights `λ(t-1)` of the last update.
    - `initial_losses`: the term losses `L(0)` of the first update.
    - `previous_losses`: the term losses `L(t-1)` of the last update.
    - `started`: whether a first update has happened.
    """

    weights: Float[Array, " num_terms"]
    initial_losses: Float[Array, " num_terms"]
    previous_losses: Float[Array, " num_terms"]
    started: Bool[Array, ""]


class ReLoBRaLo(eqx.Module):
    r"""Relative loss balancing with random lookback (Bischof & Kraus 2021), an
    adaptive weighting of the terms of a [`trainax_fm.configuration.Composite`][].

    Terms whose loss falls more slowly than the others' get more weight. With the
    term losses `L_i(t)` of update `t` and `m` terms,

    $$b_i(t, t') = m\, \mathrm{softmax}_i\Big(\frac{L_i(t)}{T\, L_i(t')}\Big),\quad
    \lambda_i(t) = \alpha\big(\rho\, \lambda_i(t-1) + (1-\rho)\, b_i(t, 0)\big)
    + (1-\alpha)\, b_i(t, t-1)$$

    with `ρ ~ Bernoulli(lookback_probability)` drawn every update (with probability
    `1 - E[ρ]` the history restarts from the balance relative to the first update),
    `λ(0) = 1`, and the weights held fixed (no gradient) in the loss
    `Σ_i c_i λ_i(t) L_i(t)` (`c_i` the composite's own weights).

    The state (`λ`, `L(0)`, `L(t-1)`) lives in the train state: the engine keeps it
    inside the optimizer state, so checkpoints, seeds and resume carry it (load a
    checkpoint with `tx.load_train_state(path, stepper, trainer.optimizer)`).

    **Arguments:**

    - `temperature`: `T` (> 0); small values balance more sharply.
    - `smoothing`: `α` in [0, 1), the weight of the history.
    - `lookback_probability`: `E[ρ]` in [0, 1]; below 1 a random key is needed.
    """

    temperature: float = eqx.field(static=True, default=0.1)
    smoothing: float = eqx.field(static=True, default=0.99)
    lookback_probability: float = eqx.field(static=True, default=0.999)

    def __check_init__(self):
        for name, value, low, high, closed in (
            ("temperature", self.temperature, 0.0, float("inf"), False),
            ("smoothing", self.smoothing, 0.0, 1.0, False),
            ("lookback_probability", self.lookback_probability, 0.0, 1.0, True),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"`{name}` must be a number, got {value!r}.")
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature}.")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"`smoothing` must lie in [0, 1), got {self.smoothing}.")
        if not 0 <= self.lookback_probability <= 1:
            raise ValueError(
                f"`lookback_probability` must lie in [0, 1], got {self.lookback_probability}."
            )

    @property
    def needs_key(self) -> bool:
        return self.lookback_probability < 1.0

    def init(self, num_terms: int) -> BalancingState:
        """The state before the first update: all weights one."""
        ones = jnp.ones((num_terms,), jnp.float32)
        return BalancingState(ones, ones, ones, jnp.asarray(False))

    def _balance(self, losses, reference):
        ratios = losses / (self.temperature * reference + jnp.finfo(losses.dtype).tiny)
        return losses.shape[0] * jax.nn.softmax(ratios)

    def update(
        self,
        state: BalancingState,
        losses: Float[Array, " num_terms"],
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, " num_terms"], BalancingState]:
        """The weights `λ(t)` for the term losses `L(t)` and the next state.

        **Arguments:**

        - `state`: the state after update `t - 1`.
        - `losses`: the term losses of update `t` (their gradient is not used).
        - `key`: draws `ρ` (ignored when `lookback_probability` is 1).

        **Returns:**

        - `(weights, new_state)`.
        """
        losses = jax.lax.stop_gradient(losses).astype(jnp.float32)
        initial = jnp.where(state.started, state.initial_losses, losses)
        previous = jnp.where(state.started, state.previous_losses, losses)
        if self.lookback_probability < 1.0:
            lookback = jax.random.bernoulli(key, self.lookback_probability)
        else:
            lookback = jnp.asarray(True)
        history = jnp.where(lookback, state.weights, self._balance(losses, initial))
        weights = self.smoothing * history + (1 - self.smoothing) * self._balance(
            losses, previous
        )
        weights = jnp.where(state.started, weights, jnp.ones_like(weights))
        return weights, BalancingState(weights, initial, losses, jnp.asarray(True))
