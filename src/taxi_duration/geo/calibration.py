"""The profile synthetic trips are drawn from: measured on real green taxi files, shipped as package data.

`data/calibration.json` is written by `scripts/calibrate.py` (see `docs/calibration.md`); it holds only
aggregates (zone weights, pair weights, hourly rates and speeds, noise quantiles), never a real row. This
module turns it into numpy arrays once per process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

import numpy as np

N_ZONES = 263  # Known TLC zones 1..263; 264 and 265 are "unknown" and only appear as dirt.


@dataclass(frozen=True)
class Alias:
    """A discrete distribution over 0..k-1 as a Walker alias table: O(1) per draw, exact probabilities.

    numpy's `searchsorted` over a CDF costs a cache-missing binary search per row; the alias method costs two
    gathers, 4x faster for the 3,263 zone-pair categories.
    """

    prob: np.ndarray
    alias: np.ndarray

    @classmethod
    def of(cls, weights: object) -> Alias:
        """Build the table with Vose's algorithm (a Python loop over categories, never over rows)."""
        w = np.asarray(weights, dtype=np.float64)
        scaled = w * len(w) / w.sum()
        prob = np.ones(len(w))
        alias = np.arange(len(w))
        small = [i for i in range(len(w)) if scaled[i] < 1]
        large = [i for i in range(len(w)) if scaled[i] >= 1]
        while small and large:
            s, big = small.pop(), large.pop()
            prob[s], alias[s] = scaled[s], big
            scaled[big] -= 1 - scaled[s]
            (small if scaled[big] < 1 else large).append(big)
        return cls(prob, alias)

    def draw(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms in [0, 1) to indices: the integer part of u*k picks a column, the fraction its side."""
        x = u * len(self.prob)
        i = np.minimum(x.astype(np.intp), len(self.prob) - 1)  # u * k can round up to k when u is within 1e-16 of 1
        return np.where(x - i < self.prob[i], i, self.alias[i])


# Small distributions become lookup tables of this many equal steps of u: one gather per row, 3x faster
# than the alias method, with probabilities exact to 1e-6.
_GRID = 1 << 20
# Noise quantile functions are tabulated finer than their 107 measured points yet small enough to stay in cache.
_NOISE_GRID = 1 << 14


@dataclass(frozen=True)
class Categorical:
    """A few values drawn with probability proportional to their weights, through a lookup table."""

    values: np.ndarray
    lookup: np.ndarray  # index into `values` for each 1/_GRID step of u

    @classmethod
    def of(cls, values: object, weights: object) -> Categorical:
        """Lay the alias table out on the grid: step j takes the value a uniform at its midpoint draws."""
        steps = Alias.of(weights).draw((np.arange(_GRID) + 0.5) / _GRID).astype(np.uint8)
        return cls(np.asarray(values), steps)

    def sample(self, u: np.ndarray) -> np.ndarray:
        """One value per uniform in `u`."""
        return self.values[self.lookup[(u * _GRID).astype(np.intp)]]


@dataclass(frozen=True)
class Profile:
    """Everything `taxi_duration.ingest.synth` samples from; arrays indexed by zone id have a dummy slot 0."""

    borough: np.ndarray  # zone id -> borough name
    manhattan: np.ndarray  # zone id -> in Manhattan (where the congestion surcharge applies)
    lat: np.ndarray  # zone id -> centroid latitude (nan for 264, 265)
    lon: np.ndarray
    area_km2: np.ndarray
    pickup_weights: np.ndarray  # zone id -> trips starting there
    pair_pu: np.ndarray  # the top pairs, most frequent first
    pair_do: np.ndarray
    pair_trips: np.ndarray
    pair_miles: np.ndarray  # median distance of each top pair
    pair_log_speed: np.ndarray  # log speed factor of each top pair (highway pairs > 0)
    borough_dropoff: dict[str, np.ndarray]  # pickup borough -> zone id -> dropoffs outside the top pairs
    distance_decay_miles: float  # of the gravity model that spreads those dropoffs, see `fallback_matrix`
    # CDFs of `fallback_matrix` at `distance_decay_miles`, one row per pickup zone z, shifted by +z and laid end
    # to end: a single searchsorted of u + z then draws the dropoffs of every pickup at once.
    fallback_cdf: np.ndarray
    detour_factor: float  # road miles per haversine mile between centroids
    intrazonal_k: float  # miles per sqrt(km2) for a trip within one zone
    how_rate: np.ndarray  # hour of week (Monday 0h = 0) -> mean trips in one such hour
    how_speed: np.ndarray  # hour of week -> typical mph at `reference_miles`
    reference_miles: float
    distance_exponent: float  # longer trips are faster: mph scales with (miles / reference) ** exponent
    noise_miles_edges: np.ndarray  # noise is tabulated per distance band cut at these miles
    # Per band, the quantile function of log-speed noise at the midpoints of `_NOISE_GRID` steps, bands laid
    # end to end; likewise the noise of log(miles / base miles) of top pairs and of the others.
    noise_log_speed: np.ndarray
    noise_log_distance_pair: np.ndarray
    noise_log_distance_fallback: np.ndarray
    categorical: dict[str, Categorical]
    fees: dict[str, float]

    def noise(self, table: np.ndarray, u: np.ndarray, miles: np.ndarray) -> np.ndarray:
        """Draw from the empirical noise distribution of the band of `miles`: its quantile function at `u`."""
        band = np.searchsorted(self.noise_miles_edges, miles, side="right")
        return table[band * _NOISE_GRID + (u * _NOISE_GRID).astype(np.intp)]

    def geometric_miles(self, pu: np.ndarray, do: np.ndarray) -> np.ndarray:
        """Road miles of a pair from geometry alone: centroid haversine x detour factor, or within one zone
        `intrazonal_k` x sqrt(its area); what a pair outside the top pairs is given."""
        return np.where(
            pu == do,
            self.intrazonal_k * np.sqrt(self.area_km2[pu]),
            self.detour_factor * haversine_miles(self.lat[pu], self.lon[pu], self.lat[do], self.lon[do]),
        )

    def typical_miles(self, pu: int, do: np.ndarray) -> np.ndarray:
        """The typical miles from zone `pu` to each of `do`: the real median of a top pair, else
        `geometric_miles`, without the noise synthesis adds."""
        miles = self.geometric_miles(np.full(len(do), pu), do)
        top = self.pair_pu == pu
        known = dict(zip(self.pair_do[top].tolist(), self.pair_miles[top].tolist(), strict=True))
        return np.array([known.get(int(z), m) for z, m in zip(do, miles, strict=True)])


def haversine_miles(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle miles between points given in degrees."""
    p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 3958.8 * np.arcsin(np.sqrt(h))


def fallback_matrix(p: Profile, decay_miles: float) -> np.ndarray:
    """(pickup zone id, dropoff zone id) -> weight of a trip outside the top pairs.

    A gravity model: the dropoff weights of the pickup's borough times exp(-centroid miles / decay_miles).
    Borough weights alone send a rare pair's rider across the whole borough; the decay, fitted by
    `scripts/calibrate.py`, brings the distances of these trips back to the real ones. Top pairs get weight 0:
    they are drawn on their own.
    """
    zone = np.arange(1, N_ZONES + 1)
    w = np.zeros((N_ZONES + 1, N_ZONES + 1))
    w[1:] = np.array([p.borough_dropoff[b] for b in p.borough[zone]])
    miles = haversine_miles(p.lat[zone, None], p.lon[zone, None], p.lat[None, zone], p.lon[None, zone])
    w[1:, 1:] *= np.exp(-miles / decay_miles)
    w[p.pair_pu, p.pair_do] = 0.0
    w[w.sum(axis=1) == 0, 1:] = 1.0  # Only the unused row 0, unless a borough has no such trip at all.
    return w


def _by_zone(values: list, fill: float = np.nan) -> np.ndarray:
    """A list for zones 1..n as an array indexed by zone id (slot 0 unused)."""
    return np.array([fill, *[fill if v is None else v for v in values]], dtype=np.float64)


def _quantile_grid(probs: list[float], bands: list[list[float]]) -> np.ndarray:
    grid = (np.arange(_NOISE_GRID) + 0.5) / _NOISE_GRID
    return np.concatenate([np.interp(grid, probs, q) for q in bands])


@cache
def raw_profile() -> dict:
    """The packaged `data/calibration.json`, parsed (cached: read once per process)."""
    return json.loads(resources.files(__package__).joinpath("data/calibration.json").read_text("utf-8"))


@cache
def load_profile() -> Profile:
    """The packaged calibration profile, ready to sample from (cached)."""
    return profile_from_dict(raw_profile())


def profile_from_dict(raw: dict) -> Profile:
    """Build a profile from the parsed JSON (`scripts/calibrate.py` uses it before the file exists)."""
    zones, pairs, fallback = raw["zones"], raw["pairs"], raw["fallback"]
    noise, cat = raw["noise"], raw["categorical"]
    profile = Profile(
        borough=np.array(["", *zones["borough"]], dtype=object),
        manhattan=np.array([False, *(b == "Manhattan" for b in zones["borough"])]),
        lat=_by_zone(zones["lat"]),
        lon=_by_zone(zones["lon"]),
        area_km2=_by_zone(zones["area_km2"]),
        pickup_weights=_by_zone(raw["pickup_weights"], fill=0.0),
        pair_pu=np.asarray(pairs["pu"], dtype=np.int32),
        pair_do=np.asarray(pairs["do"], dtype=np.int32),
        pair_trips=np.asarray(pairs["trips"], dtype=np.float64),
        pair_miles=np.asarray(pairs["median_miles"], dtype=np.float64),
        pair_log_speed=np.asarray(pairs["log_speed_factor"], dtype=np.float64),
        borough_dropoff={b: _by_zone(w, fill=0.0) for b, w in fallback["dropoff_weights_by_pickup_borough"].items()},
        distance_decay_miles=float(fallback["distance_decay_miles"]),
        fallback_cdf=np.empty(0),
        detour_factor=float(fallback["detour_factor"]),
        intrazonal_k=float(fallback["intrazonal_miles_per_sqrt_km2"]),
        how_rate=np.asarray(raw["hour_of_week"]["trip_rate"], dtype=np.float64),
        how_speed=np.asarray(raw["hour_of_week"]["speed_mph"], dtype=np.float64),
        reference_miles=float(raw["speed_model"]["reference_miles"]),
        distance_exponent=float(raw["speed_model"]["distance_exponent"]),
        noise_miles_edges=np.asarray(noise["miles_edges"], dtype=np.float64),
        noise_log_speed=_quantile_grid(noise["probs"], noise["log_speed"]),
        noise_log_distance_pair=_quantile_grid(noise["probs"], noise["log_distance_pair"]),
        noise_log_distance_fallback=_quantile_grid(noise["probs"], noise["log_distance_fallback"]),
        categorical={k: Categorical.of(v["values"], v["weights"]) for k, v in cat.items()},
        fees={k: float(v) for k, v in raw["fees"].items()},
    )
    w = fallback_matrix(profile, profile.distance_decay_miles)
    cdfs = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    cdfs[:, -1] = 1.0  # Rounding must never let u + z reach row z + 1.
    return replace(profile, fallback_cdf=(cdfs + np.arange(len(w))[:, None]).ravel())
