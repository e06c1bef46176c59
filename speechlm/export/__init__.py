"""Exporting trained models for runtimes outside speechlm (ONNX)."""

BACKENDS = ("torch", "onnx")  # what runs a model for `speechlm transcribe --backend`
