"""Deployment exporters: a sliced sub-network as ONNX, OpenVINO IR and INT8 IR, with parity checks."""

from exporters.bundle import FORMATS, export_bundle, read_manifest
from exporters.quantize import LabeledExamples, quantize_openvino

__all__ = ["FORMATS", "LabeledExamples", "export_bundle", "quantize_openvino", "read_manifest"]
