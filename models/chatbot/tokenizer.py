"""A BPE tokenizer trained on the training utterances only, shared by every chatbot variant.

`encode` is the one encoding used by training, export, serving and the benchmarks: no special tokens are added
around the sequence, so those ids are exactly the model input. [PAD] = 0 (only ever used for padding), [UNK] = 1
(it stands in for a text that gives no token at all). Metaspace + punctuation pre-tokenisation and a Metaspace
decoder make ``decode(encode(text))`` give the normalised text back. Torch-free: the service imports it.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
# Always in the alphabet, seen in training or not, so an unseen word still splits into known pieces.
ALPHABET = list(string.ascii_lowercase + string.digits + string.punctuation)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(prepend_scheme="always"), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.Metaspace(prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, UNK],
        initial_alphabet=ALPHABET,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.token_to_id(PAD) == PAD_ID and tok.token_to_id(UNK) == UNK_ID
    return tok


def encode(tok: Tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids truncated to max_length, never empty ([UNK] stands in for a text without tokens)."""
    return [enc.ids[:max_length] or [UNK_ID] for enc in tok.encode_batch(texts)]


def load_tokenizer(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
