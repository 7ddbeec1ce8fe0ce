"""`clear_caches`: drop every compiled program trainax_fm and JAX keep for reuse."""

import jax

from ._compiled import clear_compiled_cache


def clear_caches() -> None:
    """Empty trainax_fm's cache of compiled updates and JAX's compilation caches.

    Compiled updates are kept (at most `MAX_CACHED_UPDATES`, least recently used
    dropped first) so that a second trainer call with equal configuration, optimizer
    and network structure does not compile again. Call this to free their memory, e.g.
    between the studies of a long notebook session.
    """
    clear_compiled_cache()
    jax.clear_caches()
