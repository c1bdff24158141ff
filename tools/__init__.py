"""The user commands, importable as yolox.tools.<name> (e.g. yolox.tools.train) and installed as console
entry points (yolox-train, yolox-eval, ...; see setup.py)."""
