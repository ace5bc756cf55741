"""One part of the split scored: the model's and every baseline's predictions, judged by `metrics`.

On Spark a part is scored where it lies and only the sums and a sample reach the driver; on the embedded
engines a batch at a time, whose sums add up to the part's.
"""

from __future__ import annotations

import narwhals as nw
import numpy as np
import pandas as pd

from taxi_duration.features.definitions import TARGET
from taxi_duration.serve import bundle as bundle_meta
from taxi_duration.train import metrics as evaluate
from taxi_duration.train import model as bundle_io
from taxi_duration.train.adapters import Trained
from taxi_duration.train.dataset import Prepared

PLOT_SAMPLE = 50_000


def score_part(
    prepared: Prepared, role: str, course_rows: bool, trained: Trained, total: int
) -> tuple[dict[str, evaluate.Scores], pd.DataFrame | None]:
    """One part scored (a column per model and baseline, judged by `evaluate`), and, for the clean rows, a
    sample of about `PLOT_SAMPLE` of them with the model's predictions (for the plots and the interval)."""
    predictions = [evaluate.MODEL, *evaluate.BASELINES]
    keep = [TARGET, evaluate.BOROUGH, evaluate.HOUR, *bundle_meta.INPUT_COLUMNS]
    share = 0.0 if course_rows else min(1.0, PLOT_SAMPLE / max(total, 1))
    if trained.kind == "mllib":
        from pyspark.sql import functions as F

        frame = trained.model.transform(
            (prepared.course_parts if course_rows else prepared.parts)[role].to_native()
        ).withColumnRenamed("prediction", evaluate.MODEL)
        course, pair, mean = evaluate.BASELINES
        frame = trained.course.transform(frame).withColumnRenamed("prediction", course)
        frame = frame.select(
            *keep,
            evaluate.MODEL,
            course,
            F.col(bundle_meta.PAIR_MEDIAN).alias(pair),
            F.lit(trained.global_mean).alias(mean),
        )
        if not share:
            return evaluate.score(nw.from_native(frame), predictions), None
        # Two passes over the predictions (the sample, the sums): the models predict once.
        frame = frame.persist()
        try:
            sample = frame.sample(fraction=share, seed=0).toPandas()
            return evaluate.score(nw.from_native(frame), predictions), sample
        finally:
            frame.unpersist()
    # A batch at a time: the sums of the batches add up to the part's, and each gives its share of the sample.
    sums, samples, random = [], [], np.random.default_rng(0)
    for part in prepared.batches(role, course_rows=course_rows):
        frame = part[keep].assign(
            **{evaluate.MODEL: np.clip(trained.model.predict(part), 0.0, None)},
            **bundle_io.baseline_columns(part, trained.course, trained.global_mean),
        )
        sums.append(evaluate.sums(nw.from_native(frame, eager_only=True), predictions))
        samples.append(frame.sample(frac=share, random_state=random))
    sample = pd.concat(samples, ignore_index=True) if share else None
    return evaluate.score_sums(evaluate.add_sums(sums), predictions), sample
