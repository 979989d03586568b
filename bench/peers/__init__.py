"""The peer benchmark (``python -m bench.peers``, ``make bench-peers``): lnserve against other serving stacks on the
same model, tokenizer, buckets, ORT options and intent decision. See README.md beside this file."""
