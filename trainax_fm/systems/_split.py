"""Train/test split by base system: a held-out system never reaches training, not
even as part of a skew product."""

import difflib
from collections.abc import Iterable, Sequence

SPLITS = ("train", "test")


def split_by_base_system(
    base_systems: Sequence[Sequence[str]],
    held_out: Iterable[str],
) -> tuple[str, ...]:
    """`"train"` or `"test"` for each trajectory, from the systems it is built from.

    A trajectory goes to `"test"` if any of its base systems is held out: a held-out
    system and every skew product that uses it (as driver or response) are test
    data, so no held-out dynamics leak into training.

    **Arguments:**

    - `base_systems`: per trajectory, the names of its base systems (`("Lorenz63",)`,
        or `("Lorenz63", "Rossler")` for a skew product).
    - `held_out`: names of base systems to hold out; each must occur in
        `base_systems`.

    **Returns:**

    - A tuple with one `"train"` or `"test"` per trajectory.

    **Raises:**

    - `ValueError` for a held-out name that is no base system of any trajectory
        (with the close names).
    """
    if isinstance(held_out, str):
        raise TypeError(
            f"`held_out` must be a collection of system names, got the string {held_out!r}; "
            f"pass ({held_out!r},)."
        )
    held_out = tuple(held_out)
    rows = []
    for row in base_systems:
        if isinstance(row, str) or not all(isinstance(name, str) for name in row):
            raise TypeError(
                f"`base_systems` must hold one tuple of names per trajectory, got {row!r}."
            )
        rows.append(tuple(row))
    known = sorted({name for row in rows for name in row})
    for name in held_out:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"held-out system {name!r} is not a base system of the catalogue (its "
                f"base systems: {', '.join(known)}).{hint}"
            )
    held = set(held_out)
    return tuple("test" if held.intersection(row) else "train" for row in rows)
