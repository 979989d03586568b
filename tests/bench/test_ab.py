"""bench/ab.py: lnserve variants side by side (a setting, another checkout), as paired ratios."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bench.ab import main, parse_variant
from bench.servers import ServerSpec


def test_a_variant_names_its_checkout_and_settings() -> None:
    assert parse_variant("base@/tmp/base:LNSERVE_A=1,LNSERVE_B=x=y") == ServerSpec(
        "base", {"LNSERVE_A": "1", "LNSERVE_B": "x=y"}, cwd=Path("/tmp/base")
    )
    assert parse_variant("new:") == ServerSpec("new", {})


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="needs wrk (scripts/ensure-wrk.sh; make test installs it)"
)
def test_two_variants_are_measured_in_one_run_against_the_first(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "--concurrency",
            "1",
            "--seconds",
            "1",
            "--rounds",
            "2",
            "--variant",
            "a:",
            "--variant",
            "b:LNSERVE_INLINE_WHEN_IDLE=false",
        ]
    )
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(row[0].strip(), row[1].strip()) for row in rows] == [("1", "a"), ("1", "b")]
    assert rows[0][4].strip().startswith("1.00x")
    assert re.fullmatch(r" \d+\.\d\dx \(\d+\.\d\d–\d+\.\d\d\) ", rows[1][4])
    assert all(int(row[2]) > 0 and row[5].strip() == "0" for row in rows)  # answered, no errors
