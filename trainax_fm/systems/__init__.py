"""Many chaotic systems: a catalogue of ODEs, perturbed and validated, on disk.

The data of a many-system emulator ("train one forecaster on many attractors, test
it on unseen ones"): systems are described ([`trainax_fm.systems.ODESystem`][]),
integrated with SciPy at a fixed time step after a transient, varied by parameter
perturbations and skew products, filtered for bounded, stationary chaos and stored
as one `(S, T, C)` array with per-trajectory metadata.

- Systems: the built-ins ([`trainax_fm.systems.get_system`][],
    [`trainax_fm.systems.builtin_system_names`][]) and, with the optional extra
    `dysts`, the dysts catalogue ([`trainax_fm.systems.dysts_system`][]).
- Trajectories: [`trainax_fm.systems.integrate_system`][],
    [`trainax_fm.systems.on_attractor_initial_conditions`][].
- New systems: [`trainax_fm.systems.perturb_parameters`][],
    [`trainax_fm.systems.skew_product`][] (with
    [`trainax_fm.systems.coupling_strength`][] and
    [`trainax_fm.systems.identity_coupling_map`][]).
- Validity: [`trainax_fm.systems.ValidityFilter`][] (with
    [`trainax_fm.systems.zero_one_test`][], the 0-1 test for chaos).
- Channels: every system is stored with the same number of channels `C` (the
    "fixed channel selection"): a system of dimension `D >= C` contributes a fixed,
    seeded, recorded subset of `C` coordinates; one with `D < C` is completed with
    delay coordinates of its own components (Takens). So a catalogue is one
    `(S, T, C)` array and every data path of trainax_fm (in memory,
    [`trainax_fm.data.DiskTrajectories`][], meshes, several processes) reads it
    unchanged. See [`trainax_fm.systems.channel_selection`][].
- Catalogues: [`trainax_fm.systems.generate_catalogue`][],
    [`trainax_fm.systems.load_catalogue`][], [`trainax_fm.systems.Catalogue`][],
    split by base system with [`trainax_fm.systems.split_by_base_system`][].
- Zero-shot evaluation: [`trainax_fm.systems.zero_shot_table`][] forecasts from several
    context windows of every held-out trajectory, scored per system (median over
    windows) and over systems, next to the naive baselines (repeat the last state, the
    context mean); a [`trainax_fm.systems.ZeroShotTable`][] with `to_markdown()` and
    `to_csv()`.
"""

from ._catalogue import Catalogue as Catalogue
from ._generate import generate_catalogue as generate_catalogue
from ._catalogue import load_catalogue as load_catalogue
from ._channels import apply_channel_selection as apply_channel_selection
from ._channels import channel_selection as channel_selection
from ._filter import REJECTION_REASONS as REJECTION_REASONS
from ._filter import ValidityFilter as ValidityFilter
from ._filter import zero_one_test as zero_one_test
from ._integrate import integrate_system as integrate_system
from ._integrate import on_attractor_initial_conditions as on_attractor_initial_conditions
from ._perturb import perturb_parameters as perturb_parameters
from ._registry import builtin_system_names as builtin_system_names
from ._registry import dysts_system as dysts_system
from ._registry import get_system as get_system
from ._skew import coupling_strength as coupling_strength
from ._skew import identity_coupling_map as identity_coupling_map
from ._skew import skew_product as skew_product
from ._split import split_by_base_system as split_by_base_system
from ._system import ODESystem as ODESystem
from ._zero_shot import ZeroShotTable as ZeroShotTable
from ._zero_shot import default_horizons as default_horizons
from ._zero_shot import zero_shot_table as zero_shot_table
