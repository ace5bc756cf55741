"""The champion rule on numbers alone (`registry.champion.decide`): no model trained, no MLflow store."""

from __future__ import annotations

import math

import pytest

from taxi_duration.core.config import CHAMPION, PRETRIP_CHAMPION
from taxi_duration.registry.champion import TIE_TOLERANCE, Standing, decide


def test_the_first_model_of_a_feature_set_becomes_its_champion() -> None:
    verdict = decide(Standing("1", "with_distance", 6.5), {})
    assert (verdict.alias, verdict.promoted, verdict.reason) == (
        CHAMPION,
        True,
        "the first registered with_distance model",
    )


def test_a_better_challenger_takes_the_alias_and_a_worse_one_does_not() -> None:
    champions = {"with_distance": Standing("3", "with_distance", 6.0)}
    better = decide(Standing("4", "with_distance", 5.5), champions)
    assert better.promoted
    assert better.reason == f"RMSE 5.5000 beats {CHAMPION} v3 at 6.0000 on the same validation data"
    worse = decide(Standing("5", "with_distance", 6.5), champions)
    assert not worse.promoted
    assert worse.reason == f"RMSE 6.5000 does not beat {CHAMPION} v3 at 6.0000 on the same validation data"


@pytest.mark.parametrize("share", [0.0, TIE_TOLERANCE / 2, -TIE_TOLERANCE / 2])
def test_a_tie_leaves_the_alias_where_it_is(share: float) -> None:
    """The same job run again, or float noise under the tolerance either way: never a move."""
    verdict = decide(Standing("2", "pretrip", 7.0 * (1 + share)), {"pretrip": Standing("1", "pretrip", 7.0)})
    assert not verdict.promoted
    assert f"ties {PRETRIP_CHAMPION} v1" in verdict.reason


def test_a_gain_just_over_the_tolerance_is_a_win() -> None:
    verdict = decide(
        Standing("2", "pretrip", 7.0 * (1 - 3 * TIE_TOLERANCE)), {"pretrip": Standing("1", "pretrip", 7.0)}
    )
    assert verdict.promoted


def test_each_feature_set_is_judged_against_its_own_champion() -> None:
    """A pretrip model (no distance, so a larger RMSE) does not compete with the with_distance champion."""
    champions = {"with_distance": Standing("1", "with_distance", 5.0), "pretrip": Standing("2", "pretrip", 9.0)}
    pretrip = decide(Standing("3", "pretrip", 8.0), champions)
    assert (pretrip.alias, pretrip.promoted) == (PRETRIP_CHAMPION, True)
    assert f"beats {PRETRIP_CHAMPION} v2 at 9.0000" in pretrip.reason
    with_distance = decide(Standing("4", "with_distance", 8.0), champions)
    assert (with_distance.alias, with_distance.promoted) == (CHAMPION, False)
    first_pretrip = decide(Standing("5", "pretrip", 8.0), {"with_distance": Standing("1", "with_distance", 5.0)})
    assert (first_pretrip.alias, first_pretrip.promoted) == (PRETRIP_CHAMPION, True)
    assert first_pretrip.reason == "the first registered pretrip model"


@pytest.mark.parametrize("rmse", [math.nan, None])
def test_a_challenger_without_a_measured_rmse_is_never_promoted(rmse: float | None) -> None:
    """Not even as the first of its feature set: an RMSE that is not a number says nothing of the model."""
    first = decide(Standing("1", "with_distance", rmse), {})
    assert not first.promoted
    assert first.reason == f"its RMSE ({rmse}) is not a number: {CHAMPION} stays unset"
    later = decide(Standing("2", "with_distance", rmse), {"with_distance": Standing("1", "with_distance", 6.0)})
    assert not later.promoted
    assert later.reason == f"its RMSE ({rmse}) is not a number: {CHAMPION} stays v1"


@pytest.mark.parametrize("rmse", [math.nan, None])
def test_a_champion_without_a_measured_rmse_gives_way_to_one_with(rmse: float | None) -> None:
    verdict = decide(Standing("2", "with_distance", 6.0), {"with_distance": Standing("1", "with_distance", rmse)})
    assert verdict.promoted
    assert verdict.reason == (
        f"RMSE 6.0000 replaces {CHAMPION} v1, whose RMSE on the same validation data ({rmse}) is not a number"
    )


def test_a_champion_of_another_feature_set_is_a_callers_mistake() -> None:
    with pytest.raises(ValueError, match="given as the with_distance champion"):
        decide(Standing("2", "with_distance", 6.0), {"with_distance": Standing("1", "pretrip", 7.0)})
