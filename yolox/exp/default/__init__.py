"""yolox.exp.default.<name> resolves to <repo>/exps/default/<name>.py in a source checkout.

A wheel install maps this package onto exps/default directly (setup.py package_dir), so this file
only matters when the package is imported from the repository tree.
"""
from pathlib import Path

_REPO_DEFAULTS = Path(__file__).resolve().parents[3] / "exps" / "default"
if _REPO_DEFAULTS.is_dir():
    __path__.append(str(_REPO_DEFAULTS))
