"""Calls into methods that users' exp files may override with upstream's narrower signatures."""
import inspect
from typing import Any, Callable

__all__ = ["accepts_keyword", "call_with_supported"]


def accepts_keyword(fn: Callable, name: str) -> bool:
    """True when `fn` names a parameter `name` (a bare **kwargs does not count: it may pass it on to one that doesn't)."""
    return name in inspect.signature(fn).parameters


def call_with_supported(fn: Callable, *args: Any, **keywords: Any) -> Any:
    """fn(*args, **keywords) without the keywords fn does not name: an upstream-style override keeps working."""
    return fn(*args, **{name: value for name, value in keywords.items() if accepts_keyword(fn, name)})
