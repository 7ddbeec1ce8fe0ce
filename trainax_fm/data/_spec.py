"""`open_trajectories("hdf5:path#dataset")`: a data source named by one string."""

from typing import NamedTuple, Optional

from ._disk import DiskTrajectories
from ._formats import FORMATS

SPEC_FORMS = (
    "'npy:<path>', 'hdf5:<path>#<data set>', 'zarr:<path>[#<array>]' or "
    "'well:<path>[#<field>,<field>...]', optionally followed by ';channels_last'"
)
OPTIONS = ("channels_last",)


class Spec(NamedTuple):
    """The parts of a source string `<format>:<path>[#<inside>][;<option>...]`."""

    file_format: str
    path: str
    inside: Optional[str]
    options: tuple[str, ...]

    def with_path(self, path: str) -> str:
        """The same source string with another path (e.g. made absolute)."""
        inside = "" if self.inside is None else f"#{self.inside}"
        return f"{self.file_format}:{path}{inside}" + "".join(f";{o}" for o in self.options)


def parse_spec(spec: str) -> Spec:
    """Split a source string into format, path, data set (or fields) and options.

    **Arguments:**

    - `spec`: e.g. `"hdf5:run.h5#fields/u;channels_last"`.

    **Returns:**

    - A `Spec`.

    **Raises:**

    - `TypeError` for a non-string; `ValueError` for an unknown format, a missing path
        or an unknown or repeated option.
    """
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a string like {SPEC_FORMS}, got {type(spec).__name__}.")
    file_format, colon, rest = spec.partition(":")
    location, *options = rest.split(";")
    path, hash_sign, inside = location.partition("#")
    if not colon or file_format not in FORMATS or not path:
        raise ValueError(f"`spec` must look like {SPEC_FORMS}, got {spec!r}.")
    for option in options:
        if option not in OPTIONS:
            raise ValueError(
                f"unknown option {option!r} in the source {spec!r}: the options are "
                f"{OPTIONS} (e.g. 'npy:<path>;channels_last' for an array stored "
                "(S, T, *spatial, C))."
            )
    if len(set(options)) < len(options):
        raise ValueError(f"an option is given twice in the source {spec!r}.")
    return Spec(file_format, path, inside if hash_sign else None, tuple(options))


def open_trajectories(spec: str) -> DiskTrajectories:
    """The on-disk trajectories named by `spec`.

    **Arguments:**

    - `spec`: `"npy:<path>"`, `"hdf5:<path>#<data set>"`, `"zarr:<path>"` /
        `"zarr:<path>#<array>"`, or `"well:<path>"` / `"well:<path>#<field>,<field>"`
        for an HDF5 file in the_well's per-field layout (default fields: every
        `t0_fields` then `t1_fields` field). Append `";channels_last"` for an array
        stored `(S, T, *spatial, C)`. These are the same strings as the CLI's
        `[data] source`.

    **Returns:**

    - A [`trainax_fm.data.DiskTrajectories`][].
    """
    parsed = parse_spec(spec)
    return DiskTrajectories(
        parsed.path, parsed.file_format, parsed.inside or None,
        channels_last="channels_last" in parsed.options,
    )
