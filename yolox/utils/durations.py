"""Durations as users write them (`--time 45m`, `2h`, `1h30m`, `600`) and as logs print them."""
import re

from yolox.utils.user_errors import UserError

__all__ = ["TimeBudgetError", "parse_duration", "format_duration"]

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)\s*([hms])")


class TimeBudgetError(UserError, ValueError):
    """A --time value that is not a duration."""


def parse_duration(text: str) -> float:
    """Seconds in '45m', '2h', '1h30m', '90s' or a plain number of seconds."""
    cleaned = str(text).strip().lower().replace(" ", "")
    try:
        seconds = float(cleaned)
    except ValueError:
        parts = _DURATION.findall(cleaned)
        if not parts or "".join(number + unit for number, unit in parts) != cleaned:
            raise TimeBudgetError(f"--time {text!r} is not a duration: write for example 45m, 2h, 1h30m or 600s")
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise TimeBudgetError(f"--time {text!r}: the budget must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """'45 min', '2 h 5 min' or '40 s'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 120 else f"{minutes} min"
