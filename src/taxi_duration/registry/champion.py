"""The champion rule, as a decision on numbers alone: which version holds its feature set's champion alias.

`tracking.register` gathers the numbers (the new version's validation RMSE, the current champion's on the same
data, from its tags or scored again) and applies what `decide` says; nothing here touches MLflow.

Each feature set has its own alias (`config.CHAMPIONS`): a new version is only ever compared with the champion
of its own feature set. It takes the alias when it is the first of its feature set, or when it beats the
champion by more than `TIE_TOLERANCE`; a tie (the same job run again) leaves the alias where it is. An RMSE
that is missing or not a number is no measurement: such a version is never promoted, and a champion whose RMSE
on this data is not a number is replaced by any version that has one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from taxi_duration.core.config import CHAMPIONS, FeatureSet

# A new version must beat the champion's RMSE by more than this share to take the alias: anything closer is
# a tie (the same model trained again, or the float noise of scoring it another way), and a tie never moves
# it. It also covers RMSEs tagged before the tag kept full precision (rounded to 6 decimals, under 1e-7 of
# an RMSE of minutes).
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Standing:
    """A model version and its RMSE on the validation data being judged (None when it has none)."""

    version: str
    feature_set: FeatureSet
    rmse: float | None


@dataclass(frozen=True)
class Verdict:
    """Whether the new version takes its feature set's champion `alias`, and why, in one sentence."""

    alias: str
    promoted: bool
    reason: str


def _measured(rmse: float | None) -> float | None:
    """The RMSE when it is a measurement, None when it is missing or not a number."""
    return None if rmse is None or math.isnan(rmse) else rmse


def decide(challenger: Standing, champions: Mapping[FeatureSet, Standing]) -> Verdict:
    """Whether `challenger` takes its feature set's alias from that feature set's current champion.

    Args:
        challenger: the new version and its RMSE on the validation data.
        champions: the current champion of each feature set that has one, with its RMSE on the same data.

    Returns:
        The alias at stake, whether the challenger takes it, and the reason.
    """
    feature_set = challenger.feature_set
    alias = CHAMPIONS[feature_set]
    champion = champions.get(feature_set)
    rmse = _measured(challenger.rmse)
    if rmse is None:
        held = f"{alias} stays v{champion.version}" if champion else f"{alias} stays unset"
        return Verdict(alias, False, f"its RMSE ({challenger.rmse}) is not a number: {held}")
    if champion is None:
        return Verdict(alias, True, f"the first registered {feature_set} model")
    if champion.feature_set != feature_set:
        raise ValueError(f"v{champion.version} ({champion.feature_set}) is given as the {feature_set} champion")
    champion_rmse = _measured(champion.rmse)
    if champion_rmse is None:
        return Verdict(
            alias,
            True,
            f"RMSE {rmse:.4f} replaces {alias} v{champion.version}, whose RMSE on the same validation data "
            f"({champion.rmse}) is not a number",
        )
    tie = math.isclose(rmse, champion_rmse, rel_tol=TIE_TOLERANCE)
    promoted = rmse < champion_rmse and not tie
    verb = "beats" if promoted else "ties" if tie else "does not beat"
    reason = f"RMSE {rmse:.4f} {verb} {alias} v{champion.version} at {champion_rmse:.4f} on the same validation data"
    return Verdict(alias, promoted, reason)
