"""`predict`'s reading of a table: zones from coordinates under the table's own column names (the rest of
`score_table` needs PostgreSQL and is in test_postgres.py and test_migration.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxi_duration import schema as s
from taxi_duration.errors import UsageError
from taxi_duration.geo import PACKAGED_SHAPES, UNKNOWN_ZONE, load_index
from taxi_duration.scoring import with_zones


def test_a_table_with_coordinates_gets_zones_under_its_own_column_names() -> None:
    trips = pd.DataFrame(
        {
            "Pickup_Longitude": [-73.9855, None, -73.9855],  # Times Square; a missing point; Times Square
            "pickup_latitude": [40.7580, 40.7580, 40.7580],
            "dropoff_longitude": [-73.7781, -73.9855, 0.0],  # JFK; Times Square; the Gulf of Guinea
            "dropoff_latitude": [40.6413, 40.7580, 0.0],
        }
    ).astype("float64[pyarrow]")
    zoned = with_zones(trips, load_index(PACKAGED_SHAPES), "kaggle")
    assert zoned[s.PU_ZONE].tolist() == [230, UNKNOWN_ZONE, 230]
    assert zoned[s.DO_ZONE].tolist() == [132, 230, UNKNOWN_ZONE]
    assert zoned[s.PU_ZONE].dtype == np.int32
    assert list(zoned.columns[:4]) == list(trips.columns)  # the source names stay
    with pytest.raises(UsageError, match="table kaggle has coordinates, not zones"):
        with_zones(trips, None, "kaggle")
