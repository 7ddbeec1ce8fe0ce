"""Neural network architectures for emulators, written in Equinox.

Any `eqx.Module` serves as a stepper; this subpackage holds architectures whose
interface is tied to trainax_fm's layouts.

- `PatchForecaster`: a patch transformer with attention over time (rotary positions)
    and across channels, with per-series scaling, that maps a context of ODE states to
    the next block of states (the Panda / PatchTST family of forecasters of chaotic
    systems). `PatchLayer` is one of its layers.
- `SelfAttention` and `rotary_embedding`: its building blocks.
"""

from ._attention import SelfAttention as SelfAttention
from ._patch_forecaster import (
    PatchForecaster as PatchForecaster,
    PatchLayer as PatchLayer,
)
from ._rotary import rotary_embedding as rotary_embedding
