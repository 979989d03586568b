"""Benchmarks: model latency (ONNX Runtime vs PyTorch eager), HTTP load, statistics overhead.

Run as modules from the repository root (``.venv/bin/python -m bench.model_latency``); results and commands are in
``docs/benchmarks.md``.
"""
