"""Standard YOLOX experiments, importable as yolox.exp.default.<name> (e.g. yolox.exp.default.yolox_s)."""
