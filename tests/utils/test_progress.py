"""Progress: a tqdm bar on terminals, periodic loguru lines with rate and ETA elsewhere, never both."""
import io
import sys

import pytest

from tests.conftest import loguru_messages
from yolox.utils.progress import Progress, format_duration, track


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (12.7, "12s"), (65, "1m05s"), (3723, "1h02m03s"), (-3, "0s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_log_lines_every_interval_with_rate_and_eta():
    clock = FakeClock()
    with loguru_messages("INFO") as messages:
        progress = Progress(total=100, desc="tiles", unit="tile", log_every_s=10.0, stream=io.StringIO(),
                            clock=clock)
        assert not progress.uses_bar
        clock.now += 5.0
        progress.update(10)          # 5 s: before the first interval, nothing logged
        assert messages == []
        clock.now += 5.0
        progress.update(10)          # 10 s, 20 tiles: 2 tile/s, 80 left -> 40 s
        progress.close()
        progress.close()             # a second close logs nothing more
    assert messages[0] == "tiles: 20/100 tile (20.0%), 2.00 tile/s, ETA 40s"
    assert messages[1] == "tiles: done 20 tile in 10s (2.00 tile/s)"
    assert len(messages) == 2


def test_unknown_total_has_no_eta():
    clock = FakeClock()
    progress = Progress(desc="", unit="img", stream=io.StringIO(), clock=clock)
    clock.now += 4.0
    progress.update(8)
    assert progress.eta_s() is None
    assert progress.status_line() == "8 img, 2.00 img/s"


def test_terminal_gets_a_tqdm_bar_and_no_log_lines():
    pytest.importorskip("tqdm")
    stream = TerminalStream()
    with loguru_messages("INFO") as messages:
        for _ in track(range(5), desc="eval", unit="batch", stream=stream, log_every_s=0.0):
            pass
    assert messages == []
    assert "5/5" in stream.getvalue() and "batch/s" in stream.getvalue()


def test_file_stream_gets_log_lines_and_no_bar():
    stream = io.StringIO()
    with loguru_messages("INFO") as messages:
        items = list(track(["a", "b", "c"], desc="read", stream=stream, log_every_s=0.0))
    assert items == ["a", "b", "c"]
    assert stream.getvalue() == ""
    assert messages[-1].startswith("read: done 3 it in ")
    assert any(message.startswith("read: 3/3 it (100.0%)") for message in messages)


def test_without_tqdm_a_terminal_gets_log_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)     # `from tqdm import tqdm` raises ImportError
    stream = TerminalStream()
    with loguru_messages("INFO") as messages:
        with Progress(total=2, desc="x", stream=stream, log_every_s=0.0) as progress:
            assert not progress.uses_bar
            progress.update(2)
    assert stream.getvalue() == ""
    assert messages[-1].startswith("x: done 2 it")


def test_bar_false_logs_even_on_a_terminal():
    progress = Progress(total=1, stream=TerminalStream(), bar=False)
    assert not progress.uses_bar
    progress.close()
