"""Whether a method that users' exp files may override with upstream's narrower signature takes a keyword."""
import inspect
from typing import Callable

__all__ = ["accepts_keyword"]


def accepts_keyword(fn: Callable, name: str) -> bool:
    """True when `fn` names a parameter `name` (a bare **kwargs does not count: it may pass it on to one that doesn't)."""
    return name in inspect.signature(fn).parameters
