"""The chatbot zoo: five variants of one network that differ only in norm placement, norm type and residual step Δt
(same data, size, recipe and seed), and the recipe they all share. Torch-free (the CLI's help reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    placement: str  # post | pre | peri
    norm: str = "layernorm"  # layernorm | rmsnorm
    residual_scale: float = 1.0  # Δt
    ngram_buckets: int = 0  # > 0: the bag-of-n-grams head next to the encoder (ChatbotConfig.ngram_buckets)
    part_weight: float = 0.0  # with the head: each part's own loss weight (TrainConfig.part_weight)


VARIANTS: dict[str, Variant] = {
    "chatbot-post": Variant("post"),
    "chatbot-pre": Variant("pre"),
    "chatbot-peri": Variant("peri"),
    "chatbot-peri-dt0.1": Variant("peri", residual_scale=0.1),
    "chatbot-pre-rms": Variant("pre", norm="rmsnorm"),
}
