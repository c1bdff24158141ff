"""Eval loader workers sized to the split: never more than its batches, none for a single batch."""
import pytest

from yolox.data.dataloading import eval_loader_workers
from yolox.exp import get_exp
from yolox.utils.device import build_policy


@pytest.mark.parametrize("num_images, batch_size, workers, expected", [
    (20, 32, 14, 0),   # one batch holds the split: the main process loads it
    (20, 20, 14, 0),
    (21, 20, 14, 2),   # two batches, two workers
    (20, 8, 14, 3),
    (500, 8, 14, 14),  # the policy's count caps a long split
    (500, 8, 0, 0),    # the policy allows none
    (0, 8, 4, 0),
])
def test_eval_loader_workers(num_images, batch_size, workers, expected):
    assert eval_loader_workers(num_images, batch_size, workers) == expected


@pytest.mark.parametrize("batch_size, workers", [(200, 0), (100, 2)])
def test_get_eval_loader_sizes_its_workers_to_the_split(themis_dir, batch_size, workers):
    exp = get_exp(None, "yolox-nano")
    exp.data_dir, exp.num_classes, exp.data_num_workers = str(themis_dir), 1, 8
    loader = exp.get_eval_loader(batch_size=batch_size, is_distributed=False,
                                 policy=build_policy("cpu", num_workers=8, self_check=False))
    assert len(loader.dataset) == 126
    assert loader.num_workers == workers and loader.persistent_workers is (workers > 0)
