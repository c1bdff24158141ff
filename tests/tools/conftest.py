import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    """The module of tools/<name>.py, imported as yolox.tools.<name> (how the console entry points find it)."""
    return importlib.import_module(f"yolox.tools.{name}")


@pytest.fixture
def real_nano_ckpt():
    from tests.conftest import shared_path
    return shared_path("fixtures", "real_nano", "yolox_nano_from_onnx_bnfolded.pth")
