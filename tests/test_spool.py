"""Spooled rows read back as LightGBM reads them: single rows in order, then contiguous slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from taxi_duration.train.spool import Spool


def test_rows_come_back_as_they_went_in_whatever_the_batches(tmp_path: Path) -> None:
    rows = np.arange(23 * 3, dtype=np.float64).reshape(23, 3)
    spool = Spool(tmp_path / "spool", batch_rows=5)
    for start, stop in ((0, 7), (7, 8), (8, 23)):  # appended in batches of other sizes
        spool.append(rows[start:stop], rows[start:stop, 0])
    spooled = spool.close()
    assert len(spooled) == 23
    assert len(spooled.files) == 5
    np.testing.assert_array_equal(spooled.labels, rows[:, 0])
    np.testing.assert_array_equal(np.stack([spooled[i] for i in range(23)]), rows)
    np.testing.assert_array_equal(spooled[3:12], rows[3:12])  # across two batch boundaries
    np.testing.assert_array_equal(spooled[20:23], rows[20:23])
    np.testing.assert_array_equal(spooled[[1, 6, 22]], rows[[1, 6, 22]])


def test_labels_are_kept_as_lightgbms_own_copy_not_a_view_of_the_callers_frame(tmp_path: Path) -> None:
    frame = pd.DataFrame({"target": np.arange(10.0), "other": np.arange(10.0)})
    target = frame["target"].to_numpy(np.float64)
    assert target.base is not None  # a view into the block holding both float columns
    spool = Spool(tmp_path / "spool", batch_rows=4)
    spool.append(frame.to_numpy(np.float64), target)
    spooled = spool.close()
    assert spooled.labels.dtype == np.float32
    assert not np.shares_memory(spooled.labels, target)  # nor of the block behind it
    np.testing.assert_array_equal(spooled.labels, np.arange(10.0))
