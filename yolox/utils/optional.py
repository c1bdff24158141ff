"""Optional libraries: import one by name, or fail with one line naming the pip extra that brings it."""
import importlib
from types import ModuleType
from typing import Optional

__all__ = ["MissingExtra", "require"]


class MissingExtra(ImportError):
    """An optional library is not installed; the message names the package and the extra."""


def require(module: str, extra: str, purpose: str, package: Optional[str] = None) -> ModuleType:
    """Import `module`, or raise MissingExtra saying that `purpose` needs it and how to install it.

    `package` is the name on PyPI when it differs from the module's top-level name.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = package or module.split(".")[0]
        raise MissingExtra(f"{purpose} needs {package}, which is not installed: "
                           f"pip install {package}  (or pip install -e \".[{extra}]\")") from error
