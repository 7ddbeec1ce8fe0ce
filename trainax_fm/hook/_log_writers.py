"""Where log records go: JSON lines, CSV tables, TensorBoard event files.

A record is `(step, kind, scalars)` with `kind` "train" or "validation". Every writer
starts at a step: records it holds from a later step (written by a run that was then
interrupted and resumed from an earlier checkpoint) are dropped, so a resumed run's
log reads like the uninterrupted run's.
"""

import abc
import csv
import io
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

from .._atomic import write_bytes_atomic

LOG_FORMATS = ("jsonl", "csv", "tensorboard")


class AbstractLogWriter(abc.ABC):
    """One destination of log records."""

    @abc.abstractmethod
    def start(self, step: int) -> None:
        """Open for a run that continues after `step` (drop later records)."""

    @abc.abstractmethod
    def write(self, step: int, kind: str, scalars: dict[str, float]) -> None:
        """Append one record."""

    def image(self, step: int, tag: str, png: bytes) -> None:
        """Record a picture (PNG bytes); writers without images ignore it."""

    @abc.abstractmethod
    def close(self) -> None:
        pass


def _json_number(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None  # JSON has no NaN/Inf


class JsonLinesWriter(AbstractLogWriter):
    """`log.jsonl`: one JSON object per record (`{"step", "kind", name: value}`),
    flushed as it is written, so `tail -f` and pandas (`read_json(lines=True)`)
    follow the run. NaN/Inf are written as `null`."""

    def __init__(self, log_dir: Path):
        self.path = Path(log_dir) / "log.jsonl"
        self.stream: Optional[io.TextIOBase] = None

    def start(self, step: int) -> None:
        if self.path.is_file():
            kept = [
                line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step
            ]
            write_bytes_atomic(self.path, "".join(line + "\n" for line in kept).encode())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stream = open(self.path, "a")

    def write(self, step: int, kind: str, scalars: dict[str, float]) -> None:
        record = {"step": step, "kind": kind}
        record.update({name: _json_number(value) for name, value in scalars.items()})
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


class CsvWriter(AbstractLogWriter):
    """`train.csv` and `validation.csv`: one row per record, one column per scalar
    (the columns of a file are those of its first record)."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.columns: dict[str, list[str]] = {}
        self.streams: dict[str, io.TextIOBase] = {}

    def _path(self, kind: str) -> Path:
        return self.log_dir / f"{kind}.csv"

    def start(self, step: int) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for kind in ("train", "validation"):
            path = self._path(kind)
            if not path.is_file():
                continue
            rows = list(csv.reader(path.read_text().splitlines()))
            if not rows:
                continue
            header, body = rows[0], [row for row in rows[1:] if int(row[0]) <= step]
            text = io.StringIO()
            csv.writer(text).writerows([header] + body)
            write_bytes_atomic(path, text.getvalue().encode())
            self.columns[kind] = header[1:]

    def write(self, step: int, kind: str, scalars: dict[str, float]) -> None:
        if kind not in self.streams:
            path = self._path(kind)
            new = not path.is_file()
            self.streams[kind] = open(path, "a", newline="")
            if new:
                self.columns[kind] = list(scalars)
                csv.writer(self.streams[kind]).writerow(["step"] + self.columns[kind])
        columns = self.columns[kind]
        unknown = sorted(set(scalars) - set(columns))
        if unknown:
            raise ValueError(
                f"log record at update {step} has {unknown}, which {self._path(kind)} "
                f"has no column for (it has {columns}); log the same scalars every time "
                "or start a new log directory."
            )
        row = [step] + [repr(float(scalars[name])) if name in scalars else "" for name in columns]
        csv.writer(self.streams[kind]).writerow(row)
        self.streams[kind].flush()

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()


class TensorBoardWriter(AbstractLogWriter):
    """TensorBoard event files in the log directory (needs `tensorboardX`:
    `pip install "trainax_fm[tensorboard]"`). Scalars are tagged `kind/name`;
    pictures are images. A resumed run purges events after its start step."""

    def __init__(self, log_dir: Path):
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise ImportError(
                "the 'tensorboard' log format needs tensorboardX: "
                'pip install "trainax_fm[tensorboard]" (or drop "tensorboard" from '
                "the log formats)."
            ) from None
        self.log_dir = Path(log_dir)
        self.writer = None

    def start(self, step: int) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(self.log_dir), purge_step=step + 1 if step else None)

    def write(self, step: int, kind: str, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(f"{kind}/{name}", value, step)
        self.writer.flush()

    def image(self, step: int, tag: str, png: bytes) -> None:
        from PIL import Image

        picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        self.writer.add_image(tag, picture, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def make_writers(log_dir: Path, formats: tuple[str, ...]) -> list[AbstractLogWriter]:
    kinds = {"jsonl": JsonLinesWriter, "csv": CsvWriter, "tensorboard": TensorBoardWriter}
    return [kinds[name](log_dir) for name in formats]


def check_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(formats)
    unknown = [name for name in formats if name not in LOG_FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"`formats` must name at least one of {LOG_FORMATS}, got {formats!r}."
        )
    return formats
