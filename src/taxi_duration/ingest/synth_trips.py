"""The clean trips of a month, drawn from the calibration profile: zone pair, pickup time, distance, duration,
fares (steps 1-5 of `ingest/synth.py`, before any dirt)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxi_duration.core.months import Month
from taxi_duration.geo.calibration import N_ZONES, Alias, Profile


@dataclass(frozen=True)
class MonthPlan:
    """What a month's chunks share: its calendar, its pair distribution and its traffic."""

    month: Month
    start_s: int  # epoch seconds of the 1st at 00:00 (naive local time, as in the TLC files)
    end_s: int
    hours: Alias  # over the hours of the month
    hour_of_week: np.ndarray  # of each hour of the month, Monday 0h = 0
    pairs: Alias  # over the top pairs, then one "elsewhere" bucket per pickup zone 1..263
    speed_scale: float


def plan_month(p: Profile, month: Month, index: int, drift: float) -> MonthPlan:
    """What every chunk of `month` (the `index`-th month written) draws from, with `drift` applied."""
    start = np.datetime64(str(month), "M")
    hours = np.arange(start.astype("datetime64[h]"), (start + 1).astype("datetime64[h]")).astype(np.int64)
    how = ((hours // 24 + 3) % 7) * 24 + hours % 24  # 1970-01-01 was a Thursday
    # Drift tilts pickups north: zone weights times exp(drift * index * standardized centroid latitude).
    lat = p.lat[1 : N_ZONES + 1]
    tilt = np.r_[0.0, np.exp(drift * index * (lat - lat.mean()) / lat.std())]
    elsewhere = p.pickup_weights - np.bincount(p.pair_pu, weights=p.pair_trips, minlength=N_ZONES + 1)
    weights = np.r_[p.pair_trips * tilt[p.pair_pu], (elsewhere * tilt)[1:]]
    return MonthPlan(
        month=month,
        start_s=int(hours[0]) * 3600,
        end_s=(int(hours[-1]) + 1) * 3600,
        hours=Alias.of(p.how_rate[how]),
        hour_of_week=how,
        pairs=Alias.of(weights),
        speed_scale=max(1.0 - drift * index, 0.1),
    )


def _seconds(p: Profile, miles: np.ndarray, log_mph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Durations from distance and typical speed with the real noise, within the calibrated range.

    That range is 1 min..3 h and at most 80 mph, so a clean trip never looks like dirt. Trips that fall outside
    get their noise drawn again rather than clipped, which would pile them on the edge.
    """
    shortest = np.maximum(60, np.ceil(miles * 45))  # 45 s a mile is 80 mph.
    seconds = np.round(miles / np.exp(log_mph + p.noise(p.noise_log_speed, rng.random(len(miles)), miles)) * 3600)
    for _ in range(4):  # Each round redraws ~2% of the previous round's rows.
        out = np.flatnonzero((seconds < shortest) | (seconds > 3 * 3600))
        noise = p.noise(p.noise_log_speed, rng.random(len(out)), miles[out])
        seconds[out] = np.round(miles[out] / np.exp(log_mph[out] + noise) * 3600)
    return np.clip(seconds, shortest, 3 * 3600).astype(np.int64)


def draw_trips(p: Profile, plan: MonthPlan, n: int, rng: np.random.Generator, service: str) -> dict[str, np.ndarray]:
    """`n` clean trips of `plan.month` as numpy columns (pickup and dropoff in epoch seconds)."""
    k = len(p.pair_pu)
    cat = plan.pairs.draw(rng.random(n))
    top = cat < k
    pair = np.minimum(cat, k - 1)
    pu = np.where(top, p.pair_pu[pair], cat - k + 1).astype(np.int32)
    do = p.pair_do[pair].copy()
    miles = p.pair_miles[pair].copy()
    log_noise = p.noise(p.noise_log_distance_pair, rng.random(n), miles)
    fb = np.flatnonzero(~top)  # The "elsewhere" rows: dropoff from the gravity model, distance from geometry.
    u = np.minimum(rng.random(len(fb)), 1 - 1e-9) + pu[fb]  # u + z must never round up to z + 1
    do[fb] = np.searchsorted(p.fallback_cdf, u, side="right") - pu[fb] * (N_ZONES + 1)
    miles[fb] = p.geometric_miles(pu[fb], do[fb])
    log_noise[fb] = p.noise(p.noise_log_distance_fallback, rng.random(len(fb)), miles[fb])
    miles = np.clip(np.round(miles * np.exp(log_noise), 2), 0.01, 100.0)

    hour = plan.hours.draw(rng.random(n))
    pickup = plan.start_s + hour * 3600 + rng.integers(0, 3600, n)
    log_mph = (
        np.log(p.how_speed[plan.hour_of_week[hour]] * plan.speed_scale)
        + p.distance_exponent * np.log(miles / p.reference_miles)
        + np.where(top, p.pair_log_speed[pair], 0.0)
    )
    seconds = _seconds(p, miles, log_mph, rng)
    c = {name: dist.sample(rng.random(n)) for name, dist in p.categorical.items()}
    fare = np.round(3 + 2.5 * miles + 0.5 * seconds / 60, 1)
    fees = p.fees
    tip = np.where((c["payment_type"] == 1) & (rng.random(n) < fees["tip_share_card"]), 1.0, 0.0)
    tip = np.round(tip * fare * rng.uniform(0.1, 0.35, n), 2)
    tolls = np.where((miles > 8) & (rng.random(n) < fees["toll_share_long"]), fees["toll_amount"], 0.0)
    manhattan = p.manhattan[pu] | p.manhattan[do]
    share = np.where(manhattan, fees["congestion_share_manhattan"], fees["congestion_share_other"])
    congestion = np.where(rng.random(n) < share, 2.75, 0.0)
    # Since 2023 yellow pickups at JFK and LaGuardia pay a flat airport fee.
    airport = np.where((service == "yellow") & np.isin(pu, (132, 138)), 1.75, 0.0)
    total = fare + c["extra"] + c["mta_tax"] + tip + tolls + c["improvement_surcharge"] + congestion + airport
    return {
        "pickup": pickup,
        "dropoff": pickup + seconds,
        "PULocationID": pu,
        "DOLocationID": do,
        "trip_distance": miles,
        "fare_amount": fare,
        "tip_amount": tip,
        "tolls_amount": tolls,
        "congestion_surcharge": congestion,
        "Airport_fee": airport,
        "total_amount": np.round(total, 2),
        "store_and_fwd_flag": (rng.random(n) < fees["store_and_fwd_share"]).astype(np.int8),
        **c,
    }
