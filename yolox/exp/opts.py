"""Typed conversion of command-line `KEY VALUE` overrides onto an experiment's attributes."""
import ast
from typing import Any, Sequence

from loguru import logger

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


def apply_opts(target: Any, cfg_list: Sequence[Any]) -> None:
    """Set `KEY VALUE` pairs on `target`; keys that are not data attributes are skipped with one warning."""
    if len(cfg_list) % 2 != 0:
        raise OptsError(
            f"opts must be KEY VALUE pairs, got an odd count ({len(cfg_list)}): {list(cfg_list)}"
        )
    flags = [str(item) for item in cfg_list if str(item).startswith("--")]
    if flags:
        raise OptsError(f"{flags[0]} comes after the KEY VALUE overrides, where it would be read as one: put the "
                        "command's flags before the first KEY VALUE pair")
    unknown = []
    for key, text in zip(cfg_list[0::2], cfg_list[1::2]):
        current = getattr(target, key, _MISSING)
        if current is _MISSING or callable(current):
            # wandb-* pairs are read by the wandb logger, not the experiment.
            if not str(key).startswith("wandb-"):
                unknown.append(key)
            continue
        setattr(target, key, convert_opt(key, current, text))
    if unknown:
        logger.warning(f"opts: ignored keys that are not attributes of {type(target).__name__}: {unknown}")

