"""Shared test helpers: locating ../shared (reference fixtures and the THEMIS crater set)."""
import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import pytest
import torch
from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[1]
TORCH_EXTENSIONS = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser(os.path.join("~", ".cache")),
                                "torch_extensions")
SHARED_DIR = Path(os.environ.get("YOLOX_SHARED_DIR", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip the test with a reason when it is absent (a user's checkout)."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: reference fixtures live in ../shared beside the repository")
    return path


@pytest.fixture(autouse=True)
def private_user_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test gets its own user cache: no device-check report or dataset-check cache from the machine's home
    reaches the policy, and none is left there."""
    cache = tmp_path_factory.mktemp("user_cache")
    # torch's compiled extensions (the fused BN+SiLU kernel) stay in the real cache: a build takes ~40 s
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR") or TORCH_EXTENSIONS)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture(scope="session")
def tiny_coco_dir(tmp_path_factory) -> Path:
    """The tiny COCO-layout set of tests/fixtures/tiny_coco.py, made once per session."""
    from tests.fixtures.tiny_coco import make_tiny_coco

    return make_tiny_coco(tmp_path_factory.mktemp("tiny_coco"))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for this test (small convolutions on a shared 2-core machine), the count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fixtures_dir() -> Path:
    return shared_path("fixtures")


@pytest.fixture
def themis_dir() -> Path:
    return shared_path("datasets", "themis_mars")


@contextmanager
def loguru_messages(level: str) -> Iterator[List[str]]:
    """Collect the messages loguru emits at `level` and above inside the block."""
    messages: List[str] = []
    sink_id = logger.add(lambda message: messages.append(message.record["message"]), level=level)
    try:
        yield messages
    finally:
        logger.remove(sink_id)


class FakeStderr(io.StringIO):
    """A stderr stand-in that says whether it is a terminal."""

    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal
