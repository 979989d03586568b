"""lnserve: an inference service for LayerNorm models on ONNX Runtime."""

__version__ = "0.1.0"
