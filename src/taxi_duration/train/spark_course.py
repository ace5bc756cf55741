"""The course baseline on Spark, fitted in one pass over the rows: one-hot `PU_DO` + `trip_distance` ->
MLlib's `LinearRegression`, as MLlib's own models (saved, loaded and exported as any other)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.ml import PipelineModel, Transformer
from pyspark.ml.common import _py2java
from pyspark.ml.feature import OneHotEncoder, SQLTransformer, StringIndexerModel, VectorAssembler
from pyspark.ml.linalg import Vectors
from pyspark.ml.regression import LinearRegression, LinearRegressionModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from taxi_duration.core.errors import UsageError
from taxi_duration.features.definitions import TARGET, TRIP_MILES_SQL
from taxi_duration.train.baselines import PairSums
from taxi_duration.train.export import PREDICTION
from taxi_duration.train.spark import MllibPredictor

# The course baseline keeps its one-hot pairs (it is the course's model), with a tiny ridge: on the
# unregularized problem L-BFGS stopped after a few iterations (RMSE 6.72 where scikit-learn's exact fit gets
# 6.04 on 2023-02); with it, 5.99. It is solved exactly from each pair's sums (`fit_course`), where L-BFGS
# took 12-100 passes over the rows to the same coefficients.
COURSE_REG_PARAM = 1e-4


def fit_course(train: DataFrame) -> MllibPredictor:
    """Fit the course baseline on Spark in one pass over the rows: one-hot `PU_DO` + `trip_distance` (the
    straight-line miles where there is no metered distance, as `CourseBaseline` does) -> `LinearRegression`.

    Its stages are MLlib's own models, saved, loaded and exported as any other, built from one group-by by
    pair: the pairs' counts order the indexer's labels as `StringIndexer` would, and their sums give the exact
    solution of the ridge `LinearRegression` fits (`PairSums.ridge`).
    """
    miles = SQLTransformer(statement=f"SELECT *, {TRIP_MILES_SQL} AS course_miles FROM __THIS__")
    y, d = F.col(TARGET).cast("double"), F.col("course_miles")
    sums: pd.DataFrame = (
        miles.transform(train)
        .groupBy("zone_pair")
        .agg(
            F.count(F.lit(1)).alias("n"),
            *(
                F.sum(value).alias(name)
                for name, value in {"sd": d, "sy": y, "sdd": d * d, "sdy": d * y, "syy": y * y}.items()
            ),
        )
        .toPandas()
    )
    sums = sums.sort_values(["n", "zone_pair"], ascending=[False, True], ignore_index=True)  # StringIndexer's order
    if sums.empty:
        raise UsageError("no course rows in the training part to fit the course baseline on")
    indexer = StringIndexerModel.from_labels(
        sums["zone_pair"].tolist(), inputCol="zone_pair", outputCol="course_pair_idx", handleInvalid="keep"
    )
    encoder = OneHotEncoder(inputCol="course_pair_idx", outputCol="course_pair_ohe", handleInvalid="keep")
    encoded = encoder.fit(indexer.transform(train))  # from the indexer's metadata: no Spark job
    columns = ("n", "sd", "sy", "sdd", "sdy", "syy")
    intercept, pair_terms, per_mile = PairSums(*(sums[c].to_numpy(np.float64) for c in columns)).ridge(COURSE_REG_PARAM)
    # One column per pair seen, one for the indexer's unseen pairs (zero: no training row has it), the miles.
    coefficients = np.zeros(encoded.categorySizes[0] + 1)
    coefficients[: len(pair_terms)], coefficients[-1] = pair_terms, per_mile
    assembler = VectorAssembler(inputCols=["course_pair_ohe", "course_miles"], outputCol="course_features")
    regression = _linear_model(train.sparkSession, coefficients, intercept, "course_features")
    stages: list[Transformer] = [indexer, encoded, miles, assembler, regression]
    return MllibPredictor(PipelineModel(stages=stages))


def _linear_model(
    spark: SparkSession, coefficients: np.ndarray, intercept: float, features: str
) -> LinearRegressionModel:
    """An MLlib `LinearRegressionModel` of given coefficients: PySpark has no constructor for one, the JVM does."""
    context = spark.sparkContext
    jvm = context._jvm
    assert jvm is not None
    vector = _py2java(context, Vectors.dense(coefficients))
    uid = LinearRegression().uid
    java = jvm.org.apache.spark.ml.regression.LinearRegressionModel(uid, vector, float(intercept), 1.0)
    java.setFeaturesCol(features).setPredictionCol(PREDICTION)
    return LinearRegressionModel(java)
