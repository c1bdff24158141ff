"""Calls into methods that users' exp files may override with upstream's narrower signatures."""
import inspect
from typing import Any, Callable, Mapping, Optional

__all__ = ["accepts_keyword", "call_with_supported"]


def accepts_keyword(fn: Callable, name: str) -> bool:
    """True when `fn` names a parameter `name` (a bare **kwargs does not count: it may pass it on to one that doesn't)."""
    return name in inspect.signature(fn).parameters


def call_with_supported(fn: Callable, *args: Any, optional: Optional[Mapping[str, Any]] = None,
                        **keywords: Any) -> Any:
    """fn(*args, **keywords) plus those `optional` keywords that fn names: an upstream-style override, which
    lacks the newer keywords, keeps working."""
    supported = {name: value for name, value in (optional or {}).items() if accepts_keyword(fn, name)}
    return fn(*args, **keywords, **supported)
