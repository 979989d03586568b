"""The shipped artifacts the benchmarks run (the default variant of each kind) and realistic inputs for them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.bodies import chat_messages, seasonal_series
from service.runtime.base import Artifact

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("chatbot", "forecaster")


def default_artifact(kind: str) -> Artifact:
    """The artifact the service serves under the name ``kind`` (the alias target, else the only one), from
    ``LNSERVE_MODEL_DIR`` like the service."""
    from service.settings import Settings

    base = Settings().model_dir / kind / "artifacts"
    aliases_file = base / "aliases.json"
    aliases = json.loads(aliases_file.read_text(encoding="utf-8")) if aliases_file.exists() else {}
    names = [aliases[kind]] if kind in aliases else sorted(p.parent.name for p in base.glob("*/sidecar.json"))
    if not names:
        raise SystemExit(f"no {kind} artifact under {base}: train and export it first (make train)")
    folder = base / names[0]
    return Artifact(folder, json.loads((folder / "sidecar.json").read_text(encoding="utf-8")))


def chatbot_feeds(artifact: Artifact, batch: int) -> dict[str, np.ndarray]:
    """Validation utterances tokenised as the service does, right-padded to the longest of the batch.

    Batch 1 is the utterance of median length; larger batches spread over the validation file.
    """
    from tokenizers import Tokenizer

    cfg = artifact.sidecar["chatbot"]
    tok = Tokenizer.from_file(str((artifact.folder / cfg["tokenizer"]).resolve()))
    max_len, pad = int(cfg["max_length"]), int(cfg["pad_id"])
    ids = [enc.ids[:max_len] or [1] for enc in tok.encode_batch(chat_messages(max(batch, 64)))]
    if batch == 1:
        ids = [sorted(ids, key=len)[len(ids) // 2]]
    ids = ids[:batch]
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def forecaster_feeds(artifact: Artifact, batch: int) -> dict[str, np.ndarray]:
    """Seasonal series of 24 to 144 points through the shipped feature module (monthly, season 12)."""
    from models.forecaster import features

    cfg = artifact.sidecar["forecaster"]
    series = [np.asarray(s) for s in seasonal_series(max(batch, 64))[:batch]]
    feeds, _ = features.make_inputs(series, [12] * batch, int(cfg["context_length"]), int(cfg["max_horizon"]))
    return feeds


def feeds_for(artifact: Artifact, batch: int) -> dict[str, np.ndarray]:
    return chatbot_feeds(artifact, batch) if artifact.kind == "chatbot" else forecaster_feeds(artifact, batch)
