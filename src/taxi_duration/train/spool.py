"""Model inputs spooled to disk a batch at a time, and read back as LightGBM's `Sequence`.

LightGBM builds its binned dataset from a `Sequence` in two forward passes: one reads the rows of its bin
sample (sorted row numbers), the other pushes every row a batch at a time. An engine's sorted query can
only be read once, front to back, so the encoded rows go to one `.npy` file per batch first: memory holds
a batch or two, never the part.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np


class Spool:
    """Encoded rows written to `folder` in batches of exactly `batch_rows` (the last one shorter)."""

    def __init__(self, folder: Path, batch_rows: int) -> None:
        folder.mkdir(parents=True)
        self.folder, self.batch_rows = folder, batch_rows
        self.files: list[Path] = []
        self._pending: list[np.ndarray] = []  # rows not yet written: fewer than `batch_rows`
        self._labels: list[np.ndarray] = []

    def append(self, rows: np.ndarray, labels: np.ndarray) -> None:
        """Add rows (one per line, float64) and their targets."""
        # A copy, in LightGBM's own label type: a frame's column is often a view of the block holding all its
        # float columns, which kept 90 bytes a row alive (4 GiB at 45M rows) where the label needs 4.
        self._labels.append(np.array(labels, dtype=np.float32))
        self._pending.append(np.asarray(rows, dtype=np.float64))
        pending = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        full = len(pending) - len(pending) % self.batch_rows
        for start in range(0, full, self.batch_rows):
            self._write(pending[start : start + self.batch_rows])
        self._pending = [pending[full:]] if full < len(pending) else []

    def close(self) -> SpooledRows:
        """Write the last short batch; the rows, to be read back, and their targets."""
        if self._pending:
            self._write(np.concatenate(self._pending))
            self._pending = []
        labels = np.concatenate(self._labels) if self._labels else np.empty(0, dtype=np.float32)
        self._labels = []
        return SpooledRows(self.files, self.batch_rows, labels)

    def _write(self, batch: np.ndarray) -> None:
        path = self.folder / f"batch-{len(self.files):06d}.npy"
        np.save(path, np.ascontiguousarray(batch))
        self.files.append(path)


class SpooledRows(lgb.Sequence):
    """The spooled rows, read a batch file at a time (the last one read is kept, as LightGBM reads in order)."""

    def __init__(self, files: list[Path], batch_rows: int, labels: np.ndarray) -> None:
        self.files, self.batch_size, self.labels = files, batch_rows, labels
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | slice | list[int]) -> np.ndarray:
        if isinstance(index, list):
            return np.stack([self[i] for i in index])
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("spooled rows are read in contiguous slices")
            parts = [
                self._batch(b)[max(start - b * self.batch_size, 0) : stop - b * self.batch_size]
                for b in range(start // self.batch_size, -(-stop // self.batch_size))
            ]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        if index < 0:
            index += len(self)
        return self._batch(index // self.batch_size)[index % self.batch_size]

    def _batch(self, number: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != number:
            self._cached = (number, np.load(self.files[number]))
        return self._cached[1]
