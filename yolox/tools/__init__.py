"""yolox.tools.<name> resolves to <repo>/tools/<name>.py in a source checkout.

A wheel install maps this package onto tools/ directly (setup.py package_dir), so this file only matters
when the package is imported from the repository tree.
"""
from pathlib import Path

_REPO_TOOLS = Path(__file__).resolve().parents[2] / "tools"
if _REPO_TOOLS.is_dir():
    __path__.append(str(_REPO_TOOLS))
