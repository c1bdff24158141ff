import pytest

from yolox.core.options import RunOptions
from yolox.utils.durations import parse_duration
from tests.fixtures.tiny_coco import KILL_HOOK, TINY_MODEL, write_exp_file


@pytest.fixture
def tiny_exp_file(tmp_path, tiny_coco_dir):
    """An upstream-style exp file on the tiny set whose model is the millisecond TinyDetector."""
    return write_exp_file(tmp_path / "tiny_exp.py", tiny_coco_dir, tmp_path / "out", extra=TINY_MODEL + KILL_HOOK)


def train_args(time=None, time_max_epoch=None, **overrides) -> RunOptions:
    """The RunOptions of a one-process test run (`time`: a --time text; `time_max_epoch`: its epoch cap)."""
    values = dict(experiment_name="tiny", batch_size=4, time_budget_s=parse_duration(time) if time else None,
                  max_epoch_cap=time_max_epoch)
    values.update(overrides)
    return RunOptions(**values)
