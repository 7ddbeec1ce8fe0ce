"""Strict settings for the whole test-suite, and shared fixtures.

Rank promotion raises: `x + y` with `x.ndim != y.ndim` is an error in every test, so
neither the library nor a test can rely on implicit broadcasting of a lower-rank array
(a user running JAX in strict mode would otherwise hit it first).

XLA's optimisation passes are off (`JAX_DISABLE_MOST_OPTIMIZATIONS=1`, also inherited by
the subprocesses that tests start): the tests check behaviour, not speed, and with the
tiny models here compilation dominates; this takes about 15 % off the suite. Run with
`JAX_DISABLE_MOST_OPTIMIZATIONS=0` to test the optimised programs.
"""

import os

os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update(
    "jax_disable_most_optimizations",
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].lower() in ("1", "true"),
)


def pytest_configure(config):
    # Also declared in pyproject.toml; repeated here so that running a single file with
    # another configuration file (or none) still knows the marker.
    config.addinivalue_line(
        "markers", "slow: long studies, excluded from the default run (select with -m slow)"
    )


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop the compiled programs of a test module once it has run.

    Every XLA executable kept alive holds memory mappings; over the whole suite in one
    process they reach the kernel's per-process limit (`vm.max_map_count`, 65530 by
    default), after which XLA's compiler crashes with a segmentation fault. Programs
    are rarely shared between modules, so clearing the caches costs little.
    """
    yield
    import trainax_fm as tx

    tx.clear_caches()


@pytest.fixture
def key():
    """A fresh typed PRNG key, the same in every test."""
    return jax.random.key(0)


@pytest.fixture
def getkey():
    """A function returning a new, distinct key on every call (deterministic per test)."""
    base = jax.random.key(1)
    count = iter(range(1 << 30))
    return lambda: jax.random.fold_in(base, next(count))
