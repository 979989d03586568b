"""A BPE tokenizer trained on the training utterances only, shared by every chatbot variant.

`encode` is the one encoding used by training, export, serving and the benchmarks: no special tokens are added
around the sequence, so those ids are exactly the model input, and a message longer than `max_length` tokens keeps
its head and its tail (`HEAD_SHARE` of the window from the start, the rest from the end): customers put context
first and the ask last, or greet and then ask, and both ends survive. [PAD] = 0 (only ever used for padding),
[UNK] = 1 (it stands in for a text that gives no token at all).

Metaspace + punctuation pre-tokenisation; every character of the training text and the whole a-z, 0-9 and ASCII
punctuation alphabet are pieces, so a typo splits into known pieces (the character fallback). A character never
seen in training (an unseen script, an emoji) falls back to its UTF-8 bytes: 256 ``<0xNN>`` tokens close the
vocabulary, so no text maps to [UNK]. The decoder undoes both, so ``decode(encode(text))`` gives the normalised text
back. Torch-free: the service imports it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
# Always in the alphabet, seen in training or not, so an unseen word still splits into known pieces.
ALPHABET = list(string.ascii_lowercase + string.digits + string.punctuation)
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]  # the byte-fallback pieces, last in the vocabulary
HEAD_SHARE = 0.25  # of the window kept from the start of an over-long message; the rest comes from its end


def build_tokenizer(texts: Iterable[str], vocab_size: int = 4000, min_frequency: int = 2) -> Tokenizer:
    """BPE of `vocab_size` entries (with [PAD], [UNK] and the alphabet) plus the 256 byte-fallback tokens."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(prepend_scheme="always"), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="always")])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, UNK],
        initial_alphabet=ALPHABET,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer has no byte-fallback option: append the byte tokens as ordinary vocabulary entries and switch
    # the model's fallback on.
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for token in BYTE_TOKENS:
        vocab.setdefault(token, len(vocab))
    spec["model"]["byte_fallback"] = True
    tok = Tokenizer.from_str(json.dumps(spec))
    assert tok.token_to_id(PAD) == PAD_ID and tok.token_to_id(UNK) == UNK_ID
    return tok


def truncate(ids: list[int], max_length: int) -> list[int]:
    """The first `HEAD_SHARE` of the window and the last tokens, when there are more than `max_length`."""
    if len(ids) <= max_length:
        return ids
    head = int(max_length * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (max_length - head) :]


def encode(tok: Tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids, head + tail truncated to max_length, never empty ([UNK] stands in for a text without tokens).

    One text is encoded on the calling thread: `encode_batch` hands even one text to its Rayon pool, whose wake-up
    on a core ONNX Runtime's threads spin on cost a served request ~90 µs (3x the encoding itself)."""
    encodings = [tok.encode(texts[0])] if len(texts) == 1 else tok.encode_batch(texts)
    return [truncate(enc.ids, max_length) or [UNK_ID] for enc in encodings]


def load_tokenizer(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
