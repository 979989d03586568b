"""The runtime interface and ONNX Runtime providers; each kind's runtime lives in its package (`service/kinds/`)."""
