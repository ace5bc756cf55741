"""Build the synthetic-data profile from the real green taxi files, then check the generator against them.

Usage (from the repository root):

    python scripts/calibrate.py [DATA_DIR]        # DATA_DIR defaults to ../shared/data

Writes three things, all derived (no real row is copied):
- `src/taxi_duration/geo/data/calibration.json`: the profile `taxi_duration.ingest.synth` samples from;
- `docs/calibration.md`: real vs synthetic figures;
- `docs/figures/calibration_*.png`: the charts the doc shows.

Only 2021-01, 2021-02, 2022-01..03 and 2023-01 are read for the profile: 2023-02 is the validation month and
2023-03 the held-out test month of the modelling work, and neither may leak into data we generate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")  # Files only: the script must run headless.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from taxi_duration.core.months import Month
from taxi_duration.geo.calibration import N_ZONES, fallback_matrix, haversine_miles, profile_from_dict
from taxi_duration.ingest.synth import DirtyShares, generate

REPO = Path(__file__).resolve().parents[1]
CALIBRATION_MONTHS = ("2021-01", "2021-02", "2022-01", "2022-02", "2022-03", "2023-01")
# The month the synthetic sample imitates: the most recent calibration month, so fees are current.
SAMPLE_MONTH = "2023-01"
TOP_PAIRS = 3000
# Pair speed factors are shrunk toward 0 by n / (n + SHRINK): a pair seen 5 times says little about its traffic.
SHRINK = 20
# Noise quantile grid: dense in the tails, where the long trips live.
PROBS = np.r_[[0.0005, 0.001, 0.0025, 0.005], np.arange(0.01, 0.995, 0.01), [0.995, 0.9975, 0.999, 0.9995]]
# Noise is measured separately per distance band: a 0.5-mile hop varies far more, relatively, than a 10-mile
# ride (p99 of log(miles / pair median) is 1.96 under 1 mile, 0.40 over 8), so one pooled table fattens the tail.
MILES_EDGES = (1.0, 2.0, 4.0, 8.0)
AIRPORTS = (1, 132, 138)


def _files(data: Path, months: tuple[str, ...]) -> str:
    paths = [str(data / f"green_tripdata_{m}.parquet") for m in months]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        sys.exit(f"missing real files: {missing}")
    return "[" + ", ".join(f"'{p}'" for p in paths) + "]"


def _trips(con: duckdb.DuckDBPyConnection, source: str) -> pd.DataFrame:
    """Trips of the calibration population: 1 min..3 h, 0 < miles <= 100, known zones, pickup inside the month."""
    return con.sql(
        f"""
        select PULocationID::int as pu, DOLocationID::int as "do", trip_distance as miles,
               epoch(lpep_dropoff_datetime - lpep_pickup_datetime) / 60.0 as minutes,
               (isodow(lpep_pickup_datetime) - 1) * 24 + hour(lpep_pickup_datetime) as how,
               hour(lpep_pickup_datetime) as hour
        from read_parquet({source}, union_by_name = true, filename = true)
        where minutes between 1 and 180 and miles > 0 and miles <= 100
          and pu between 1 and 263 and "do" between 1 and 263
          and strftime(lpep_pickup_datetime, '%Y-%m') = regexp_extract(filename, '(\\d{{4}}-\\d{{2}})', 1)
        """
    ).df()


def _hour_slots(months: tuple[str, ...]) -> np.ndarray:
    """How many times each hour-of-week (Monday 0h = 0) occurs in `months`: the denominator of a trip rate."""
    counts = np.zeros(168)
    for m in months:
        start = np.datetime64(m, "M")
        hours = np.arange(start.astype("datetime64[h]"), (start + 1).astype("datetime64[h]"))
        h = hours.astype(np.int64)
        # 1970-01-01 was a Thursday: weekday (Monday 0) = (days + 3) % 7.
        np.add.at(counts, ((h // 24 + 3) % 7) * 24 + h % 24, 1)
    return counts


def _categorical(
    con: duckdb.DuckDBPyConnection, source: str, column: str, *, min_share: float = 0.001, min_value: float = 0
) -> dict:
    """Values of `column` at or above `min_value` with their counts, dropping values rarer than `min_share`."""
    rows = con.sql(
        f"select {column} as v, count(*) as n from read_parquet({source}, union_by_name = true) "
        f"where {column} is not null and {column} >= {min_value} group by 1 order by 1"
    ).fetchall()
    total = sum(n for _, n in rows)
    kept = [(v, n) for v, n in rows if n / total >= min_share]
    return {"values": [float(v) for v, _ in kept], "weights": [int(n) for _, n in kept]}


def _banded(values: np.ndarray, miles: np.ndarray, keep: np.ndarray) -> list[list[float]]:
    """Quantiles of `values[keep]` at PROBS, one row per band of `miles` cut at MILES_EDGES."""
    band = np.searchsorted(MILES_EDGES, miles, side="right")
    return [
        [round(float(q), 4) for q in np.quantile(values[keep & (band == b)], PROBS)]
        for b in range(len(MILES_EDGES) + 1)
    ]


def _fit_decay(profile: dict, real_miles: np.ndarray, real_pu: np.ndarray) -> float:
    """The gravity decay whose trips outside the top pairs have the real centroid distances (p10..p90)."""
    p = profile_from_dict(profile)
    zone = np.arange(1, N_ZONES + 1)
    h = haversine_miles(p.lat[zone, None], p.lon[zone, None], p.lat[None, zone], p.lon[None, zone]).ravel()
    order = np.argsort(h)
    mass = np.bincount(real_pu, minlength=N_ZONES + 1)[1:, None]
    probs = (0.1, 0.25, 0.5, 0.75, 0.9)
    target = np.quantile(real_miles, probs)
    best = (np.inf, 0.0)
    for decay in np.geomspace(0.5, 50, 81):
        w = fallback_matrix(p, decay)[1:, 1:]
        cum = np.cumsum((w / w.sum(axis=1, keepdims=True) * mass).ravel()[order])
        err = np.abs(np.interp(np.array(probs) * cum[-1], cum, h[order]) - target).sum()
        best = min(best, (err, float(decay)))
    return round(best[1], 3)


def build_profile(data: Path) -> dict:
    """Measure everything the generator samples from."""
    con = duckdb.connect()
    source = _files(data, CALIBRATION_MONTHS)
    recent = _files(data, (SAMPLE_MONTH,))
    trips = _trips(con, source)

    lookup = pd.read_csv(data / "taxi_zone_lookup.csv").set_index("LocationID")
    cent = pd.read_csv(data / "taxi_zone_centroids.csv").set_index("LocationID").reindex(lookup.index)
    lat = cent["centroid_lat"].to_numpy()
    lon = cent["centroid_lon"].to_numpy()
    area = cent["area_km2"].to_numpy()
    borough = lookup["Borough"].to_numpy()
    zone_ids = lookup.index.to_numpy()

    # Pairs: the top ones carry their own median distance and speed factor; the rest fall back to geometry.
    pairs = trips.groupby(["pu", "do"]).size().sort_values(ascending=False, kind="stable")
    top = pairs.iloc[:TOP_PAIRS]
    trips = trips.join(pd.Series(np.arange(len(top)), index=top.index, name="pair"), on=["pu", "do"])
    in_top = trips["pair"].notna().to_numpy()
    pair_idx = trips["pair"].fillna(-1).to_numpy(np.int64)
    pair_miles = trips[in_top].groupby("pair")["miles"].median().to_numpy()

    # Fallback distance: centroid haversine times a detour factor; within one zone, a multiple of sqrt(area).
    pu, do = trips["pu"].to_numpy(), trips["do"].to_numpy()
    hav = haversine_miles(lat[pu - 1], lon[pu - 1], lat[do - 1], lon[do - 1])
    miles = trips["miles"].to_numpy()
    fb = ~in_top
    detour = float(np.median(miles[fb & (pu != do)] / hav[fb & (pu != do)]))
    intra_k = float(np.median(miles[pu == do] / np.sqrt(area[pu[pu == do] - 1])))
    fb_base = np.where(pu == do, intra_k * np.sqrt(area[pu - 1]), detour * hav)
    base = np.where(in_top, pair_miles[np.maximum(pair_idx, 0)], fb_base)
    log_dist_resid = np.log(miles / base)

    # Speed: log mph = a[hour of week] + beta * log(miles / ref) + pair factor + noise.
    log_speed = np.log(miles / (trips["minutes"].to_numpy() / 60))
    log_miles = np.log(miles)
    how = trips["how"].to_numpy()
    x = log_miles - pd.Series(log_miles).groupby(how).transform("mean").to_numpy()
    y = log_speed - pd.Series(log_speed).groupby(how).transform("mean").to_numpy()
    beta = float((x * y).sum() / (x * x).sum())
    ref = float(np.median(miles))
    adj = log_speed - beta * (log_miles - np.log(ref))
    pair_factor = np.zeros(len(top))
    for _ in range(3):  # Alternate the two medians; three rounds settle to the second decimal.
        a = pd.Series(adj - np.where(in_top, pair_factor[np.maximum(pair_idx, 0)], 0)).groupby(how).median()
        resid = adj - a.reindex(range(168)).to_numpy()[how]
        med = pd.Series(resid[in_top]).groupby(pair_idx[in_top]).median().to_numpy()
        pair_factor = med * top.to_numpy() / (top.to_numpy() + SHRINK)
    speed_resid = resid - np.where(in_top, pair_factor[np.maximum(pair_idx, 0)], 0)

    # Fallback dropoffs: for each pickup borough, where the trips outside the top pairs went.
    boroughs = sorted(set(borough[:263]))
    fb_trips = trips[fb]
    fb_borough = borough[fb_trips["pu"].to_numpy() - 1]
    fallback = {}
    for b in boroughs:
        counts = np.bincount(fb_trips["do"].to_numpy()[fb_borough == b], minlength=264)[1:]
        fallback[b] = counts.tolist()

    rate = np.bincount(how, minlength=168) / _hour_slots(CALIBRATION_MONTHS)
    manhattan = "(" + ", ".join(str(int(z)) for z in zone_ids[borough == "Manhattan"]) + ")"
    fees = con.sql(
        f"""select
              avg((tip_amount > 0)::int) filter (where payment_type = 1) as tip_share_card,
              avg((tolls_amount > 0)::int) filter (where trip_distance > 8) as toll_share_long,
              mode(tolls_amount) filter (where tolls_amount > 0) as toll_amount,
              avg((congestion_surcharge > 0)::int) filter (where PULocationID in {manhattan}
                  or DOLocationID in {manhattan}) as congestion_share_manhattan,
              avg((congestion_surcharge > 0)::int) filter (where PULocationID not in {manhattan}
                  and DOLocationID not in {manhattan}) as congestion_share_other,
              avg((store_and_fwd_flag = 'Y')::int) as store_and_fwd_share
            from read_parquet({recent}) where fare_amount >= 0"""
    ).df()
    r2 = lambda v: [round(float(t), 2) for t in v]  # noqa: E731 - keeps the JSON small
    r4 = lambda v: [round(float(t), 4) for t in v]  # noqa: E731
    profile = {
        "about": (
            "Derived by scripts/calibrate.py from NYC TLC green trips of "
            + ", ".join(CALIBRATION_MONTHS)
            + " (1 min..3 h, 0 < miles <= 100, zones 1..263, pickup inside the file's month). "
            "Hour of week: Monday 0h = 0. Speeds in mph, distances in miles. Fees from " + SAMPLE_MONTH + "."
        ),
        "trips": len(trips),
        "zones": {
            "id": zone_ids.tolist(),
            "borough": borough.tolist(),
            "lat": [None if np.isnan(v) else round(float(v), 5) for v in lat],
            "lon": [None if np.isnan(v) else round(float(v), 5) for v in lon],
            "area_km2": [None if np.isnan(v) else round(float(v), 3) for v in area],
        },
        "pickup_weights": np.bincount(pu, minlength=264)[1:].tolist(),
        "pairs": {
            "pu": [int(p) for p, _ in top.index],
            "do": [int(d) for _, d in top.index],
            "trips": top.astype(int).tolist(),
            "median_miles": r2(pair_miles),
            "log_speed_factor": r2(pair_factor),
        },
        "fallback": {
            "dropoff_weights_by_pickup_borough": fallback,
            "distance_decay_miles": 1.0,  # fitted below
            "detour_factor": round(detour, 4),
            "intrazonal_miles_per_sqrt_km2": round(intra_k, 4),
        },
        "hour_of_week": {
            "trip_rate": r2(rate),
            "speed_mph": r2(np.exp(a.reindex(range(168)).to_numpy())),
        },
        "speed_model": {"reference_miles": round(ref, 3), "distance_exponent": round(beta, 4)},
        "noise": {
            "probs": r4(PROBS),
            "miles_edges": list(MILES_EDGES),
            # Speed noise is banded by the trip's miles, distance noise by the pair's base miles.
            "log_speed": _banded(speed_resid, miles, np.ones_like(in_top)),
            "log_distance_pair": _banded(log_dist_resid, base, in_top),
            "log_distance_fallback": _banded(log_dist_resid, base, fb),
        },
        "categorical": {
            "VendorID": _categorical(con, source, "VendorID"),
            "RatecodeID": _categorical(con, source, "RatecodeID"),
            # 0 passengers is dirt (DirtyShares.zero_passengers), not part of the clean profile.
            "passenger_count": _categorical(con, source, "passenger_count", min_share=0, min_value=1),
            "payment_type": _categorical(con, source, "payment_type"),
            "trip_type": _categorical(con, source, "trip_type"),
            "extra": _categorical(con, recent, "extra", min_share=0.005),
            "mta_tax": _categorical(con, recent, "mta_tax", min_share=0.005),
            "improvement_surcharge": _categorical(con, recent, "improvement_surcharge", min_share=0.005),
        },
        "fees": {k: round(float(v), 4) for k, v in fees.iloc[0].items()},
    }
    profile["fallback"]["distance_decay_miles"] = _fit_decay(profile, hav[fb], pu[fb])
    return profile


# Each check a validation step would make, as SQL over one raw file (green column names).
DIRT_CHECKS = {
    "dropoff before pickup": "lpep_dropoff_datetime < lpep_pickup_datetime",
    "under a minute (0-59 s)": "lpep_dropoff_datetime >= lpep_pickup_datetime "
    "and lpep_dropoff_datetime - lpep_pickup_datetime < interval 1 minute",
    "duration > 5 h": "lpep_dropoff_datetime - lpep_pickup_datetime > interval 5 hour",
    "pickup outside month": "strftime(lpep_pickup_datetime, '%Y-%m') <> '{month}'",
    "zone 264/265": "PULocationID > 263 or DOLocationID > 263",
    "zero distance": "trip_distance = 0",
    "distance > 100 mi": "trip_distance > 100",
    "speed > 80 mph (distance <= 100)": "trip_distance <= 100 and lpep_dropoff_datetime > lpep_pickup_datetime "
    "and trip_distance / (epoch(lpep_dropoff_datetime - lpep_pickup_datetime) / 3600) > 80",
    "passengers < 0 or > 9": "passenger_count < 0 or passenger_count > 9",
    "passengers = 0": "passenger_count = 0",
    "passenger_count null (null block)": "passenger_count is null",
    "zone, distance or dropoff null": "PULocationID is null or trip_distance is null or lpep_dropoff_datetime is null",
    "negative fare": "fare_amount < 0",
}
QUANTILES = (0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99)


def _dirt(con: duckdb.DuckDBPyConnection, path: Path, month: str) -> dict[str, int]:
    sums = ", ".join(f"count(*) filter (where {sql.format(month=month)})" for sql in DIRT_CHECKS.values())
    row = con.sql(f"select count(*), {sums} from '{path}'").fetchall()[0]
    counts = dict(zip(["rows", *DIRT_CHECKS], row, strict=True))
    counts["exact duplicates"] = (
        row[0] - con.sql(f"select count(*) from (select distinct * from '{path}')").fetchall()[0][0]
    )
    return counts


def _quantiles(values: pd.Series) -> list[float]:
    return [float(q) for q in np.quantile(values, QUANTILES)]


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _chart(path: Path, title: str, ylabel: str, series: dict[str, pd.Series]) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for label, s in series.items():
        ax.plot(s.index, s.to_numpy(), marker="o", markersize=3, label=label)
    ax.set(title=title, xlabel="hour of day (pickup)", ylabel=ylabel, xticks=range(0, 24, 2))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(data: Path, profile: dict, synthetic: Path, docs: Path) -> str:
    """Real vs synthetic figures as Markdown; charts written under `docs/figures`."""
    con = duckdb.connect()
    real_file = data / f"green_tripdata_{SAMPLE_MONTH}.parquet"
    pool = _trips(con, _files(data, CALIBRATION_MONTHS))
    real = _trips(con, f"['{real_file}']")
    synth = _trips(con, f"['{synthetic}']")
    frames = {f"real {SAMPLE_MONTH}": real, "real calibration set": pool, "synthetic": synth}
    names = pd.read_csv(data / "taxi_zone_lookup.csv").set_index("LocationID")["Zone"]
    for f in frames.values():
        f["mph"] = f["miles"] / (f["minutes"] / 60)

    out = ["## Trip duration (minutes), quantiles p5..p99\n"]
    header = ["", *(f"p{round(q * 100)}" for q in QUANTILES)]
    out.append(_table(header, [[k, *(f"{v:.1f}" for v in _quantiles(f["minutes"]))] for k, f in frames.items()]))
    out.append("\n\n## Trip distance (miles), quantiles p5..p99\n")
    out.append(_table(header, [[k, *(f"{v:.2f}" for v in _quantiles(f["miles"]))] for k, f in frames.items()]))

    out.append("\n\n## Top 15 zone pairs (by real calibration-set trips): share of trips, %\n")
    shares = {k: f.groupby(["pu", "do"]).size() / len(f) * 100 for k, f in frames.items()}
    top = shares["real calibration set"].sort_values(ascending=False).head(15).index
    rows = [
        [f"{names[pu]} -> {names[do]} ({pu}->{do})", *(f"{s.get((pu, do), 0):.2f}" for s in shares.values())]
        for pu, do in top
    ]
    rows.append(["**all 15**", *(f"{s.reindex(top).fillna(0).sum():.1f}" for s in shares.values())])
    out.append(_table(["pair", *frames], rows))
    airport = {k: f"{(f['pu'].isin(AIRPORTS) | f['do'].isin(AIRPORTS)).mean() * 100:.2f}" for k, f in frames.items()}
    out.append(
        "\n\nTrips touching an airport zone (1, 132, 138), %: " + ", ".join(f"{k} {v}" for k, v in airport.items())
    )

    figures = docs / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    by_hour = {k: f.groupby("hour").size() / len(f) * 100 for k, f in frames.items()}
    speed = {k: f.groupby("hour")["mph"].median() for k, f in frames.items()}
    _chart(figures / "calibration_trips_by_hour.png", "Trips by hour of day", "% of trips", by_hour)
    _chart(figures / "calibration_speed_by_hour.png", "Median speed by hour of day", "mph", speed)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bins = np.logspace(0, np.log10(180), 60)
    for label, f in frames.items():
        ax.hist(f["minutes"], bins=bins, density=True, histtype="step", label=label)
    ax.set(xscale="log", title="Trip duration", xlabel="minutes (log scale)", ylabel="density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(figures / "calibration_duration.png", dpi=110)
    plt.close(fig)

    out.append("\n\n## Trips by hour of day, % (every third hour; all 24 in the chart)\n")
    hours = list(range(0, 24, 3))
    out.append(_table(["", *map(str, hours)], [[k, *(f"{s[h]:.1f}" for h in hours)] for k, s in by_hour.items()]))
    out.append("\n\n![trips by hour](figures/calibration_trips_by_hour.png)")
    out.append("\n\n## Median speed by hour of day, mph (every third hour; all 24 in the chart)\n")
    out.append(_table(["", *map(str, hours)], [[k, *(f"{s[h]:.1f}" for h in hours)] for k, s in speed.items()]))
    weekday = {k: f[f["how"] < 120] for k, f in frames.items()}
    rush = {
        k: f"{f.loc[f['hour'] == 8, 'mph'].median():.1f} / {f.loc[f['hour'] == 3, 'mph'].median():.1f}"
        for k, f in weekday.items()
    }
    out.append("\n\nWeekday median mph at 8h / 3h: " + ", ".join(f"{k} {v}" for k, v in rush.items()))
    out.append("\n\n![median speed by hour](figures/calibration_speed_by_hour.png)")
    out.append("\n\n![duration distribution](figures/calibration_duration.png)")

    out.append(f"\n\n## Dirt: rows caught by each check, real {SAMPLE_MONTH} vs synthetic (`DirtyShares()`)\n")
    real_dirt, synth_dirt = _dirt(con, real_file, SAMPLE_MONTH), _dirt(con, synthetic, SAMPLE_MONTH)
    out.append(
        _table(["check", f"real {SAMPLE_MONTH}", "synthetic"], [[k, real_dirt[k], synth_dirt[k]] for k in real_dirt])
    )
    out.append(
        "\n\nA synthetic dirty row has exactly one kind of dirt; real rows often have several (a zero distance"
        " with a zero duration), so some real checks overlap."
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=REPO.parent / "shared" / "data")
    data = parser.parse_args().data
    profile = build_profile(data)
    out = REPO / "src" / "taxi_duration" / "geo" / "data" / "calibration.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(profile, separators=(",", ":")) + "\n")
    # The generator reads the profile through importlib.resources, which finds the file just written.
    rows = pq.ParquetFile(data / f"green_tripdata_{SAMPLE_MONTH}.parquet").metadata.num_rows
    with tempfile.TemporaryDirectory() as tmp:
        (synthetic,) = generate(rows, [Month.parse(SAMPLE_MONTH)], Path(tmp), seed=0, dirty=DirtyShares())
        body = compare(data, profile, synthetic, REPO / "docs")
    pairs = profile["pairs"]
    coverage = sum(pairs["trips"]) / profile["trips"] * 100
    model, fallback = profile["speed_model"], profile["fallback"]
    head = f"""# Synthetic data calibration

Generated by `python scripts/calibrate.py` (from the repository root; the optional argument is the folder of
the real files, default `../shared/data`). Every number and chart below comes from that run; do not edit by hand.

The profile `src/taxi_duration/geo/data/calibration.json` ({out.stat().st_size // 1000} KB, aggregates only) is
measured on the real green files of {", ".join(CALIBRATION_MONTHS)}: {profile["trips"]:,} trips of 1 min..3 h,
0 < distance <= 100 miles, zones 1..263, pickup inside the file's month. **2023-02 (validation) and 2023-03 (the
held-out test month) are never read**, so nothing about them leaks into synthetic data.

What the profile holds and how `taxi_duration.ingest.synth` uses it:
- the top {len(pairs["pu"]):,} zone pairs ({coverage:.1f}% of trips), each with its median distance and a
  log-speed factor (its median speed residual, shrunk toward 0 by n / (n + {SHRINK}));
- for the other trips, a gravity model: the dropoff follows where the pickup borough's other trips went,
  weighted by exp(-centroid miles / {fallback["distance_decay_miles"]}) (decay fitted to their real centroid
  distances), and the distance is centroid haversine x {fallback["detour_factor"]} (within one zone:
  {fallback["intrazonal_miles_per_sqrt_km2"]} x sqrt(area in km2));
- the trip rate and the speed of each of the 168 hours of the week; speed also grows with distance, as
  (miles / {model["reference_miles"]}) ** {model["distance_exponent"]};
- empirical quantiles of the distance and speed noise per distance band (so the long tail is the real one),
  and the real distributions of vendor, rate code, passengers, payment type, trip type and fees ({SAMPLE_MONTH}
  for fees).

The synthetic sample below is `generate({rows}, [{SAMPLE_MONTH}], seed=0, dirty=DirtyShares())`, one month of the
size of real {SAMPLE_MONTH}. Trip figures use the same filter as the profile, on all three columns.

"""
    notes = """

## Known differences
- The zone-pair mix does not depend on the hour: real early-morning trips are longer (airports, commutes), so
  their raw median speed is higher than the synthetic one at 4-6h, while the speed at a given distance matches.
- Holidays and weather are not modelled: every week of a month has the same hourly pattern.
- Only the top pairs have their own speed; other pairs move at the hour-of-week speed.
- Clean synthetic trips last 1 min..3 h; sub-minute trips (1.5-3.4% of real rows) come only from the
  `under_a_minute` dirt, whose distances stay short, so it is not also counted as a speed violation the
  way some real sub-minute trips are.
- The calibration set mixes 2021 (pandemic, faster traffic) with 2022-2023, so synthetic trips sit between
  real 2023-01 and the pooled set.
- Yellow files use this green profile under yellow column names.
"""
    (REPO / "docs" / "calibration.md").write_text(head + body + notes)


if __name__ == "__main__":
    sys.exit(main())
