import argparse

import pytest

from tests.fixtures.tiny_coco import KILL_HOOK, TINY_MODEL, make_tiny_coco, write_exp_file


@pytest.fixture(scope="session")
def tiny_coco_dir(tmp_path_factory):
    return make_tiny_coco(tmp_path_factory.mktemp("tiny_coco"))


@pytest.fixture
def tiny_exp_file(tmp_path, tiny_coco_dir):
    """An upstream-style exp file on the tiny set whose model is the millisecond TinyDetector."""
    return write_exp_file(tmp_path / "tiny_exp.py", tiny_coco_dir, tmp_path / "out", extra=TINY_MODEL + KILL_HOOK)


def train_args(**overrides) -> argparse.Namespace:
    values = dict(experiment_name="tiny", batch_size=4, fp16=False, device="cpu", resume=False, ckpt=None,
                  start_epoch=None, cache=None, occupy=False, logger="tensorboard", trust_ckpt=False,
                  devices=None, dist_backend=None, dist_url=None, num_machines=1, machine_rank=0, opts=[])
    values.update(overrides)
    return argparse.Namespace(**values)
