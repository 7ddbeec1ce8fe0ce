"""`open_trajectories("hdf5:path#dataset")`: a data source named by one string."""

from ._disk import DiskTrajectories
from ._formats import FORMATS

SPEC_FORMS = "'npy:<path>', 'hdf5:<path>#<data set>' or 'zarr:<path>[#<array>]'"


def open_trajectories(spec: str) -> DiskTrajectories:
    """The on-disk trajectories named by `spec`.

    **Arguments:**

    - `spec`: `"npy:<path>"`, `"hdf5:<path>#<data set>"` or `"zarr:<path>"` /
        `"zarr:<path>#<array>"` (the same strings as the CLI's `[data] source`).

    **Returns:**

    - A [`trainax_fm.data.DiskTrajectories`][].
    """
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a string like {SPEC_FORMS}, got {type(spec).__name__}.")
    file_format, colon, rest = spec.partition(":")
    if not colon or file_format not in FORMATS or not rest:
        raise ValueError(f"`spec` must look like {SPEC_FORMS}, got {spec!r}.")
    path, _, dataset = rest.partition("#")
    return DiskTrajectories(path, file_format, dataset or None)
