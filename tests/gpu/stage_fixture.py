"""A stand-in stage for the orchestrator's tests: writes one result, then sleeps (to be stopped) or fails.

python -m tests.gpu.stage_fixture --json FILE {sleep|fail}
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.gpu.common import Results

parser = argparse.ArgumentParser()
parser.add_argument("--json", type=Path, required=True)
parser.add_argument("mode", choices=["sleep", "fail"])
args = parser.parse_args()
results = Results(args.json)
results.append("rows", {"step": 1})
if args.mode == "fail":
    raise RuntimeError("this stage fails on purpose")
time.sleep(60)
results.append("rows", {"step": 2})
