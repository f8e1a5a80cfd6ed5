"""Latency lookup tables measured on the target CPU (ONNX Runtime and OpenVINO)."""
