"""The inspector screenshots of the README and docs/monitoring.md (`make screenshots`): a real server, the drift
demonstration's traffic (in-distribution, shifted, in-distribution again), then Debian's chromium on the Chat and
Live tabs.

    .venv/bin/python scripts/inspector_screenshot.py [--phase-s 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import drift_demo  # noqa: E402
from bench.servers import ServerSpec, running  # noqa: E402
from tests.inspector.browser import chromium, ensure_chromium  # noqa: E402

DOCS = ROOT / "docs"
MESSAGE = "my invoice shows a charge i don't recognise"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phase-s", type=float, default=20.0)
    args = parser.parse_args()
    why = ensure_chromium()
    if why is not None:
        raise SystemExit(why)
    chatbot = json.loads((ROOT / "models" / "chatbot" / "artifacts" / "aliases.json").read_text())["chatbot"]
    env = {"LNSERVE_ACTIVATION_SAMPLE_RATE": "1", "LNSERVE_INTRA_OP_THREADS": "1"}
    with running([ServerSpec("lnserve", env)]) as urls, chromium() as browser:
        url = urls["lnserve"]
        (chat,) = [s for s in drift_demo.scenarios(chatbot) if s.model == chatbot]
        with httpx.Client(base_url=url, timeout=30) as client:
            for bodies in chat.phases.values():
                drift_demo.send_for(client, chat.endpoint, chat.model, bodies, args.phase_s)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        page.goto(f"{url}/inspector")
        page.fill("#chat-message", MESSAGE)
        page.click("#chat-form button")
        page.wait_for_selector("#chat-charts[data-state=done]", timeout=30_000)
        page.screenshot(path=str(DOCS / "inspector-chat.png"), full_page=True)
        page.click("#tab-live")
        page.select_option("#live-model", chatbot)
        page.select_option("#live-window", "10")
        page.wait_for_selector("#live-heatmap[data-state=done]", timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(DOCS / "inspector-live.png"), full_page=True)
    print(f"wrote {DOCS / 'inspector-chat.png'} and {DOCS / 'inspector-live.png'}")


if __name__ == "__main__":
    main()
