"""YOLOX object detection, device-aware (CUDA, Apple MPS, CPU)."""

__version__ = "0.4.0"
