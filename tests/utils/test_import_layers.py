"""Imports point down the layers: the device layer and utils import no models, the models no experiments."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set:
    """Absolute names of every module `path` imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("files,forbidden", [
    ("yolox/utils/device/*.py", ("yolox.models", "yolox.exp", "yolox.core", "yolox.data")),
    ("yolox/utils/model_utils.py", ("yolox.models", "yolox.exp", "yolox.core")),
    ("yolox/models/*.py", ("yolox.exp", "yolox.core", "yolox.cli")),
])
def test_no_import_points_up(files, forbidden):
    upward = {f"{path.relative_to(REPO)}: {name}" for path in REPO.glob(files)
              for name in imported_modules(path) if name.startswith(forbidden)}
    assert not upward
