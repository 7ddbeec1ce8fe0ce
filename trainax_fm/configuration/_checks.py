from typing import Any


def require_ref_stepper(config_name: str, ref_stepper: Any) -> None:
    if ref_stepper is None:
        raise ValueError(
            f"{config_name} compares against a reference simulator: pass "
            "`ref_stepper=...` (a function mapping one state to the next), e.g. to the "
            "trainer or to the configuration call."
        )


def require_residuum_fn(config_name: str, residuum_fn: Any) -> None:
    if residuum_fn is None:
        raise ValueError(
            f"{config_name} needs `residuum_fn=...`: a function `residuum_fn(u_next, "
            "u_prev)` of BATCHED states that returns the discrete residuum."
        )


def require_key(config_name: str, key: Any) -> None:
    if key is None:
        raise ValueError(
            f"{config_name} is stochastic and needs a random key: call it with "
            "`key=jax.random.PRNGKey(...)` (trainers pass a fresh key every step)."
        )
