"""Collect the metrics of several runs into one table (rows, CSV, Markdown, pandas)."""

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ._toml import write_text_atomic

COLUMNS = (
    "run",
    "name",
    "source",
    "method",
    "network",
    "num_seeds",
    "num_parameters",
    "num_training_steps",
    "final_train_loss",
    "validation_monitor",
    "best_validation",
    "best_validation_step",
    "nrmse_step1",
    "nrmse_last",
    "gmean_nrmse",
    "nrmse_aggregate_steps",
    "high_correlation_time",
    "num_rollout_steps",
    "wall_time_seconds",
)


def _row(path: Path, root: Path, metrics: dict) -> dict:
    nrmse = metrics.get("nrmse") or [None]
    run = path.parent.relative_to(root).as_posix() if path.parent != root else "."
    row = {key: metrics.get(key) for key in COLUMNS}
    row.update(run=run, nrmse_step1=nrmse[0], nrmse_last=nrmse[-1])
    best_step = row.get("best_validation_step")
    if isinstance(best_step, list):  # one per seed
        row["best_validation_step"] = ";".join(str(step) for step in best_step)
    return row


def collect_results(root: Union[str, os.PathLike]) -> list[dict]:
    """Gather the `metrics.json` of every finished run below `root`.

    **Arguments:**

    - `root`: a results root (e.g. `results/`); every `metrics.json` in it or in any
        subfolder counts as one run.

    **Returns:**

    - One dict per run with the keys of `COLUMNS` (`run` is the folder relative to
        `root`), sorted by `run`. Unreadable files are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is not a folder of results.")
    rows = []
    for path in sorted(root.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(metrics, dict) and metrics.get("status", "complete") == "complete":
            rows.append(_row(path, root, metrics))
    return sorted(rows, key=lambda r: r["run"])


def sort_rows(rows: Sequence[dict], column: str, *, descending: bool = False) -> list[dict]:
    """The rows ordered by `column` (e.g. `"best_validation"`); runs without a value
    come last.

    **Arguments:**

    - `rows`: rows of `collect_results`.
    - `column`: one of `COLUMNS`.
    - `descending`: largest first (for metrics where higher is better).

    **Returns:**

    - A new sorted list.
    """
    if column not in COLUMNS:
        raise ValueError(f"cannot sort by {column!r}; the columns are {', '.join(COLUMNS)}.")
    present = [row for row in rows if row.get(column) is not None]
    missing = [row for row in rows if row.get(column) is None]
    return sorted(present, key=lambda row: row[column], reverse=descending) + missing


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_csv(rows: Sequence[dict], path: Optional[Union[str, os.PathLike]] = None) -> str:
    """CSV text of the rows (columns `COLUMNS`); written atomically to `path` if given."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    text = buffer.getvalue()
    if path is not None:
        write_text_atomic(path, text)
    return text


def to_markdown(rows: Sequence[dict], columns: Sequence[str] = COLUMNS) -> str:
    """A Markdown table of the rows (numbers with 4 significant digits)."""
    header = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_text(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def to_dataframe(rows: Sequence[dict]):
    """The rows as a `pandas.DataFrame` (needs `pip install 'trainax_fm[table]'`)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "to_dataframe needs pandas: pip install 'trainax_fm[table]' (or use "
            "collect_results/to_csv, which need nothing)."
        ) from None
    return pd.DataFrame(list(rows), columns=list(COLUMNS))


def results_table(root: Union[str, os.PathLike]):
    """The runs below `root` as a pandas DataFrame, or a list of rows without pandas."""
    rows = collect_results(root)
    try:
        return to_dataframe(rows)
    except ImportError:
        return rows
