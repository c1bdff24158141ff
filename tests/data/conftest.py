import pytest
from loguru import logger


@pytest.fixture
def log_lines():
    """Messages logged through loguru while the test runs."""
    lines = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    yield lines
    logger.remove(sink)
