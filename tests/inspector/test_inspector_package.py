"""The inspector ships inside the package: a wheel built from this tree holds the page and every asset it loads."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "service" / "inspector"


def test_the_page_loads_only_files_that_exist_next_to_it() -> None:
    html = (PAGE / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="(inspector/static/[^"]+)"', html)
    assert sorted(assets) == [
        "inspector/static/charts.js",
        "inspector/static/inspector.css",
        "inspector/static/inspector.js",
    ]
    assert all((PAGE / "static" / Path(asset).name).is_file() for asset in assets)
    assert not re.search(r"https?://", html)


@pytest.mark.slow
def test_a_wheel_of_the_project_contains_the_inspector(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("lnserve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(path.relative_to(ROOT)) for path in PAGE.rglob("*") if path.is_file()}
    assert shipped and shipped <= names, shipped - names
