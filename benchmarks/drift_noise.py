"""How small a drift window can be judged: the zone PSI of random trips against the rest of the same month.

Run from the repository root:

    python benchmarks/drift_noise.py --month ../shared/data/green_tripdata_2023-03.parquet

Both windows come from one month, so any PSI is noise. For each window size, five random draws from the
month's second half are held to its first half, on the pickup and drop-off zones (the categorical checks
with the most values), with `drift.psi`, the statistic `drift` uses. The largest of the five is printed:
a window whose noise alone crosses `drift_psi_threshold` cannot be judged, which sets `drift_min_rows`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from taxi_duration.monitor.drift import psi

SIZES = (200, 500, 1_000, 2_000, 5_000, 10_000)
DRAWS = 5


def main() -> None:
    """Print the largest zone PSI of DRAWS random windows of each size against the month's first half."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--month", type=Path, required=True, help="A TLC trip file (PULocationID, DOLocationID).")
    args = parser.parse_args()
    zones = pq.read_table(args.month, columns=["PULocationID", "DOLocationID"])
    rng = np.random.default_rng(0)
    print(f"{'trips':>7} {'PU zone PSI':>12} {'DO zone PSI':>12}  (largest of {DRAWS}; {zones.num_rows:,} trips)")
    for size in SIZES:
        largest = []
        for column in ("PULocationID", "DOLocationID"):
            values = zones.column(column).to_numpy()
            reference = Counter(values[: len(values) // 2].tolist())
            rest = values[len(values) // 2 :]
            largest.append(max(psi(reference, Counter(rng.choice(rest, size).tolist())) for _ in range(DRAWS)))
        print(f"{size:>7,} {largest[0]:>12.3f} {largest[1]:>12.3f}")


if __name__ == "__main__":
    main()
