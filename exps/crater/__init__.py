"""Crater experiment files, shipped as yolox.exp.crater so the crater command finds them when installed."""
