import pytest

from tests.conftest import loguru_messages


@pytest.fixture
def log_lines():
    """Messages logged through loguru while the test runs."""
    with loguru_messages("INFO") as lines:
        yield lines
