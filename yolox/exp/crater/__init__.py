"""yolox.exp.crater is <repo>/exps/crater in a source checkout (the crater experiment files).

A wheel install maps this package onto exps/crater directly (setup.py package_dir), so this file only
matters when the package is imported from the repository tree.
"""
from pathlib import Path

_REPO_CRATER_EXPS = Path(__file__).resolve().parents[3] / "exps" / "crater"
if _REPO_CRATER_EXPS.is_dir():
    __path__.append(str(_REPO_CRATER_EXPS))
