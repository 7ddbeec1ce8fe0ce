"""Many chaotic systems: catalogues of trajectories and zero-shot evaluation.

- `zero_shot_table`: forecasts from several context windows of every held-out
    trajectory, scored per system (median over windows) and over systems, next to the
    naive baselines (repeat the last state, the context mean); a `ZeroShotTable` with
    `to_markdown()` and `to_csv()`.
"""

from ._zero_shot import ZeroShotTable as ZeroShotTable
from ._zero_shot import default_horizons as default_horizons
from ._zero_shot import zero_shot_table as zero_shot_table
