"""`/predict` and `/predict/batch`: trips to minutes, down the scorer's road, or a 422 naming what was wrong."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Depends, HTTPException

from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet
from taxi_duration.serve.api.deps import Served, ServedModels, prediction_key
from taxi_duration.serve.api.errors import REFUSALS, Refused, refusal_of, refuse
from taxi_duration.serve.api.schemas import Batch, BatchPrediction, Chosen, Interval, Prediction, Trip
from taxi_duration.serve.holder import Champions
from taxi_duration.serve.scorer import Scorer

# Up to this many trips, all answered from the fast path's memory, a prediction takes microseconds and runs
# on the event loop; anything else runs in a worker thread, so no request can hold up the others. Such
# evaluations run one at a time (`EVALUATIONS_AT_ONCE`): more threads would not run Python faster under the
# GIL, only take a larger share of it from the event loop.
INLINE_TRIPS = 100
EVALUATIONS_AT_ONCE = 1
DECIMALS = 2  # minutes are answered to the hundredth; more digits than that is noise

router = APIRouter(tags=["predictions"], dependencies=[Depends(prediction_key)], responses=REFUSALS)


def _rounded(values: Any) -> list[float]:
    return [round(v, DECIMALS) for v in values.tolist()]


def _asked(champions: Champions, feature_set: FeatureSet) -> Scorer:
    """The served model of the feature set a client asked for, or a 422 naming those served."""
    model = champions.by_feature_set.get(feature_set)
    if model is None:
        served = " and ".join(champions.by_feature_set)
        raise HTTPException(422, f"this server has no {feature_set} model: it serves {served}")
    return model


async def answer(served: Served, model: Scorer, trips: list[Trip], at: Sequence[int] | None = None) -> list[Prediction]:
    """`model`'s predictions for the trips at positions `at` (all of them by default); a refusal names the
    trip by its position in `trips`."""
    picked = trips if at is None else [trips[i] for i in at]
    ready = [t.canonical() for t in picked]
    if model.zones is None and any(c[s.PU_ZONE] is None or c[s.DO_ZONE] is None for c in ready):
        raise HTTPException(422, f"send {' and '.join(s.ZONES)}: this server has no zone shapes to find them")
    scored = model.score(ready, remembered_only=True) if len(ready) <= INLINE_TRIPS else None
    if scored is None:  # an evaluation of new trips: milliseconds, in a worker thread so others go on
        scored = await anyio.to_thread.run_sync(partial(model.score, ready), limiter=served.evaluations)
    assert scored is not None
    if refused := [(i, r) for i, r in enumerate(scored.reasons) if r is not None]:
        first, reasons = refused[0]
        zones = {zone: float(scored.zones[zone][first]) for zone in s.ZONES}
        explained = refusal_of(Refused(model, ready[first], zones), reasons)
        refuse(trips, first if at is None else at[first], *explained)
    served.metrics.trips.inc(len(picked))
    for m in scored.minutes:
        served.metrics.minutes.observe(m)
    version, alias, feature_set = model.version, model.alias, model.feature_set
    return [
        Prediction(
            duration_minutes=m,
            interval=Interval(p10=lo, p90=hi),
            model_version=version,
            model_alias=alias,
            feature_set=feature_set,
        )
        for m, lo, hi in zip(_rounded(scored.minutes), _rounded(scored.p10), _rounded(scored.p90), strict=True)
    ]


@router.post("/predict", response_model=Prediction)
async def predict(served: Served, champions: ServedModels, trip: Trip, feature_set: Chosen = None) -> Prediction:
    """Predict one trip's duration in minutes, with the p10-p90 interval and the model that answered."""
    if feature_set is None:
        return (await answer(served, champions.pick(trip.trip_distance is not None), [trip]))[0]
    return (await answer(served, _asked(champions, feature_set), [trip]))[0]


@router.post("/predict/batch", response_model=BatchPrediction)
async def predict_batch(
    served: Served, champions: ServedModels, batch: Batch, feature_set: Chosen = None
) -> BatchPrediction:
    """Predict up to 1000 trips at once; predictions come back in the order sent, each naming its model."""
    trips = batch.trips
    if feature_set is not None:
        predictions = await answer(served, _asked(champions, feature_set), trips)
    else:
        placed: dict[int, Prediction] = {}
        for model, rows in champions.split([t.trip_distance is not None for t in trips]):
            at = rows.tolist()
            placed.update(zip(at, await answer(served, model, trips, at), strict=True))
        predictions = [placed[i] for i in range(len(trips))]
    versions = ",".join(dict.fromkeys(p.model_version for p in predictions))
    return BatchPrediction(predictions=predictions, model_version=versions)
