import pytest
import torch


@pytest.fixture
def one_thread():
    """Small convolutions on a shared 2-core machine run far faster without thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
