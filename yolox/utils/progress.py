"""Progress of long loops: a tqdm bar on a terminal, periodic log lines everywhere else.

A terminal gets a live bar (rate and ETA); a pipe, a CI log or a file gets one loguru line every
`log_every_s` seconds with the same figures, never a bar, so log files stay readable. Without tqdm
installed the log lines are used on terminals too.

    for batch in track(loader, desc="eval", unit="batch"):
        ...

    with Progress(total=n_tiles, desc="tiles", unit="tile") as progress:
        ...
        progress.update(len(batch))
"""
import sys
import time
from typing import Callable, Iterable, Iterator, Optional, TextIO, TypeVar

from loguru import logger

__all__ = ["Progress", "track", "format_duration", "terminal_bar", "terminal_bar_possible", "terminal_sink"]

T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """Seconds as `1h02m03s`, `4m05s` or `12s` (rounded down to whole seconds)."""
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _tqdm_class():
    """tqdm's bar class, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm  # lazy: tqdm is optional (plain log lines without it)
    except ImportError:
        return None
    return tqdm


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Counts work done towards `total` (None: unknown) and shows it as a bar or as log lines.

    `bar`: None chooses by the stream (a bar on a terminal), True asks for a bar (log lines when
    tqdm is missing), False always logs. `clock` is the time source, injectable for tests.
    """

    def __init__(self, total: Optional[int] = None, desc: str = "", unit: str = "it",
                 log_every_s: float = 10.0, stream: Optional[TextIO] = None, bar: Optional[bool] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.log_every_s = log_every_s
        self.count = 0
        self._clock = clock
        self._start = clock()
        self._last_log = self._start
        self._closed = False
        stream = stream if stream is not None else sys.stderr
        wants_bar = _is_terminal(stream) if bar is None else bar
        tqdm = _tqdm_class() if wants_bar else None
        self._bar = tqdm(total=total, desc=desc or None, unit=unit, file=stream, dynamic_ncols=True) \
            if tqdm is not None else None

    @property
    def uses_bar(self) -> bool:
        """True when a tqdm bar shows the progress, False when log lines do."""
        return self._bar is not None

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._start

    def rate(self) -> float:
        """Units per second since the start (0 before any time has passed)."""
        elapsed = self.elapsed_s
        return self.count / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> Optional[float]:
        """Seconds left at the rate so far; None when the total or the rate is unknown."""
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(self.total - self.count, 0) / rate

    def status_line(self) -> str:
        """`desc: 120/1000 tile (12.0%), 3.40 tile/s, ETA 4m18s` (no total: count and rate only)."""
        prefix = f"{self.desc}: " if self.desc else ""
        done = f"{self.count}/{self.total} {self.unit}" if self.total is not None else f"{self.count} {self.unit}"
        if self.total:
            done += f" ({100.0 * self.count / self.total:.1f}%)"
        line = f"{prefix}{done}, {self.rate():.2f} {self.unit}/s"
        eta = self.eta_s()
        return line + (f", ETA {format_duration(eta)}" if eta is not None else "")

    def update(self, n: int = 1) -> None:
        """Record `n` more units done; logs a line when `log_every_s` has passed since the last one."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self._clock()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            logger.info(self.status_line())

    def close(self) -> None:
        """End the bar, or log the final count, rate and time taken (once)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            return
        prefix = f"{self.desc}: " if self.desc else ""
        logger.info(f"{prefix}done {self.count} {self.unit} in {format_duration(self.elapsed_s)} "
                    f"({self.rate():.2f} {self.unit}/s)")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def track(iterable: Iterable[T], total: Optional[int] = None, desc: str = "", unit: str = "it",
          log_every_s: float = 10.0, stream: Optional[TextIO] = None,
          bar: Optional[bool] = None) -> Iterator[T]:
    """Yield the items of `iterable` while showing progress; `total` defaults to len() when it has one."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total=total, desc=desc, unit=unit, log_every_s=log_every_s, stream=stream, bar=bar) as progress:
        for item in iterable:
            yield item
            progress.update(1)


def terminal_bar_possible() -> bool:
    """True when the real stderr is a terminal and tqdm is installed."""
    return _is_terminal(sys.__stderr__) and _tqdm_class() is not None


def terminal_bar(total: Optional[int], desc: str = "", unit: str = "it") -> Optional[Progress]:
    """A bar on the real stderr when it is a terminal and tqdm is installed, else None.

    For loops that already log their own lines (the trainer): they get a bar on a terminal and nothing
    more anywhere else.
    """
    if not terminal_bar_possible():
        return None
    return Progress(total=total, desc=desc, unit=unit, stream=sys.__stderr__, bar=True)


def terminal_sink(message: str) -> None:
    """Loguru sink for a terminal: lines go through tqdm.write, so a live bar stays below them intact."""
    _tqdm_class().write(message, file=sys.__stderr__, end="")
