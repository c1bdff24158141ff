"""Typed conversion of command-line `KEY VALUE` overrides onto an experiment's attributes."""
import ast
import difflib
from typing import Any, List, Sequence

from yolox.utils.user_errors import UserError

_TRUE_WORDS = {"true", "1", "yes", "y", "on"}
_FALSE_WORDS = {"false", "0", "no", "n", "off"}
_MISSING = object()


class OptsError(UserError, ValueError):
    """A `KEY VALUE` override that cannot be applied."""


def parse_bool(key: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise OptsError(f"opts: {key}={text!r} is not a boolean; use true/false, 1/0 or yes/no")


def _literal_or_text(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _cast_like(key: str, template: Any, text: str) -> Any:
    """Convert `text` to the type of `template` (a scalar of the attribute's current value)."""
    if isinstance(template, bool):
        return parse_bool(key, text)
    if isinstance(template, int):
        try:
            return int(text)
        except ValueError:
            value = _literal_or_text(text)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise OptsError(f"opts: {key}={text!r} is not an integer") from None
    if isinstance(template, float):
        try:
            return float(text)
        except ValueError:
            raise OptsError(f"opts: {key}={text!r} is not a number") from None
    if isinstance(template, str):
        return text
    return _literal_or_text(text)


def _cast_sequence(key: str, current: Sequence, text: str) -> Sequence:
    body = text.strip().strip("[]()").strip()
    pieces = [piece.strip() for piece in body.split(",") if piece.strip()] if body else []
    if isinstance(current, tuple) and current and len(pieces) != len(current):
        raise OptsError(f"opts: {key}={text!r} needs {len(current)} comma-separated values, got {len(pieces)}")
    if current:
        items = [_cast_like(key, current[0], piece) for piece in pieces]
    else:
        items = [_literal_or_text(piece) for piece in pieces]
    return type(current)(items)


def convert_opt(key: str, current: Any, text: Any) -> Any:
    """Value for attribute `key` (now `current`) given the command-line `text`."""
    if not isinstance(text, str):
        return text
    if isinstance(current, (list, tuple)):
        return _cast_sequence(key, current, text)
    if current is None:
        return _literal_or_text(text)
    return _cast_like(key, current, text)


def _looks_like_flag(token: str) -> bool:
    """A command-line flag (-c, --ckpt), not a negative number given as a value."""
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


def _settable(target: Any) -> List[str]:
    """The data attributes of `target` a KEY may name (methods are not)."""
    return [name for name in dir(target) if not name.startswith("_") and not callable(getattr(target, name, None))]


def _unknown_key_error(target: Any, key: str) -> OptsError:
    close = difflib.get_close_matches(key, _settable(target), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; declare it in your exp's __init__ to add a field of your own"
    return OptsError(f"{key} is not an exp field{hint}")


def apply_opts(target: Any, cfg_list: Sequence[Any]) -> None:
    """Set `KEY VALUE` pairs on `target`, each converted to the type of the current value.

    A KEY must name a data attribute of the exp (a field users add in their own exp counts); a flag after the
    first pair is an error rather than a silently ignored value.
    """
    tokens = [str(item) for item in cfg_list]
    flags = [token for token in tokens if _looks_like_flag(token)]
    if flags:
        raise OptsError(f"{flags[0]} comes after the KEY VALUE overrides, where it would be read as one: put the "
                        "command's flags before the first KEY VALUE pair")
    if len(cfg_list) % 2 != 0:
        raise OptsError(f"opts must be KEY VALUE pairs, got an odd count ({len(cfg_list)}): {tokens}")
    for key, text in zip(cfg_list[0::2], cfg_list[1::2]):
        current = getattr(target, key, _MISSING)
        if current is _MISSING or callable(current):
            raise _unknown_key_error(target, str(key))
    for key, text in zip(cfg_list[0::2], cfg_list[1::2]):
        setattr(target, key, convert_opt(key, getattr(target, key), text))
