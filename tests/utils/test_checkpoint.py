"""Checkpoint I/O: weights-only loading, refusal of code-carrying pickles, fine-tune and strict loads, atomic save."""
import os

import numpy as np
import pytest
import torch
from loguru import logger
from torch import nn

from yolox.models.build import build_yolox, init_yolox
from yolox.utils.checkpoint import (
    UnsafeCheckpointError,
    load_checkpoint_file,
    load_ckpt,
    load_exp_model,
    load_model_weights,
    save_checkpoint,
)


class WritesMarker:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def nano(num_classes: int = 80) -> nn.Module:
    torch.manual_seed(0)
    return init_yolox(build_yolox(0.33, 0.25, num_classes, depthwise=True))


@pytest.fixture
def log_lines():
    lines = []
    handler = logger.add(lines.append, format="{message}", level="WARNING")
    yield lines
    logger.remove(handler)


def test_numpy_scalars_load_weights_only(tmp_path):
    path = tmp_path / "ckpt.pth"
    state = {"model": {"w": torch.ones(2)}, "best_ap": np.float64(0.25), "start_epoch": np.int64(3),
             "curr_ap": None, "arr": np.arange(3, dtype=np.float32)}
    torch.save(state, path)
    loaded = load_checkpoint_file(path)
    assert loaded["best_ap"] == 0.25 and loaded["start_epoch"] == 3
    np.testing.assert_array_equal(loaded["arr"], [0, 1, 2])


def test_numpy1_names_load_weights_only(tmp_path):
    """Checkpoints written under NumPy 1.x spell the scalar constructor numpy.core.multiarray.scalar."""
    path = tmp_path / "numpy1.pth"
    torch.save({"best_ap": np.float64(0.375)}, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    assert b"numpy._core.multiarray" in raw
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert load_checkpoint_file(path)["best_ap"] == 0.375


def test_code_carrying_pickle_refused_then_trusted(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": WritesMarker(str(marker))}, path)

    with pytest.raises(UnsafeCheckpointError) as refused:
        load_checkpoint_file(path)
    message = str(refused.value)
    assert "\n" not in message
    assert str(path) in message and "--trust-ckpt" in message and "trust_pickle=True" in message
    assert not marker.exists()

    with pytest.raises(UnsafeCheckpointError):
        load_model_weights(nano(), path)
    assert not marker.exists()

    load_checkpoint_file(path, trust_pickle=True)
    assert marker.exists()


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_checkpoint_file(tmp_path / "nowhere.pth")


def test_fine_tune_other_num_classes_skips_exactly_cls_preds(log_lines):
    source = nano(num_classes=80)
    target = nano(num_classes=3)
    reg_before = target.head.reg_preds[0].weight.clone()
    cls_bias_before = target.head.cls_preds[1].bias.clone()
    ckpt = {"model": {f"module.{k}": v for k, v in source.state_dict().items()}, "start_epoch": 5}
    load_ckpt(target, ckpt)

    torch.testing.assert_close(target.head.reg_preds[0].weight, source.head.reg_preds[0].weight)
    assert not torch.equal(target.head.reg_preds[0].weight, reg_before)
    torch.testing.assert_close(target.head.cls_preds[1].bias, cls_bias_before)

    tables = [line for line in log_lines if "skipped" in line]
    assert len(tables) == 1
    skipped = {row.split("|")[1].strip() for row in tables[0].splitlines() if row.startswith("| head.")}
    expected = {f"head.cls_preds.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert skipped == expected
    assert not any("not in the" in line for line in log_lines)


def test_fine_tune_reports_missing_and_unexpected(log_lines):
    model = nano(num_classes=2)
    state = dict(model.state_dict())
    del state["head.stems.0.conv.weight"]
    state["extra.weight"] = torch.zeros(1)
    load_ckpt(model, state)
    assert any("not in the checkpoint" in line and "head.stems.0.conv.weight" in line for line in log_lines)
    assert any("not in the model" in line and "extra.weight" in line for line in log_lines)


def test_strict_load_reports_mismatch_in_one_line(tmp_path):
    path = tmp_path / "other_classes.pth"
    torch.save({"model": nano(num_classes=3).state_dict()}, path)
    with pytest.raises(RuntimeError) as mismatch:
        load_model_weights(nano(num_classes=80), path)
    assert "\n" not in str(mismatch.value) and "6 shape mismatches" in str(mismatch.value)


@pytest.mark.parametrize("trained_with_p2", [True, False])
def test_exp_takes_the_checkpoints_stride_4_layout_before_building(tmp_path, trained_with_p2):
    from yolox.exp import get_exp

    nano_exp = os.path.join(os.path.dirname(__file__), "..", "..", "exps", "crater", "yolox_nano_crater.py")
    trainer_exp = get_exp(nano_exp)
    trainer_exp.p2_head = trained_with_p2
    path = tmp_path / "best_ckpt.pth"
    trained = trainer_exp.get_model()
    torch.save({"model": trained.state_dict()}, path)
    exp = get_exp(nano_exp)
    exp.p2_head = not trained_with_p2
    exp.get_model()
    loaded = load_exp_model(exp, path)
    assert exp.p2_head == trained_with_p2
    assert loaded.backbone.p2 == trained_with_p2
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_strict_load_of_bare_state_dict(tmp_path):
    source = nano(num_classes=2)
    path = tmp_path / "bare.pth"
    torch.save(source.state_dict(), path)
    loaded = load_model_weights(nano(num_classes=2), path).state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_save_checkpoint_atomic_and_best(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "best_ap": 0.5}
    path = save_checkpoint(state, True, tmp_path / "run", "latest")
    assert os.path.basename(path) == "latest_ckpt.pth"
    assert sorted(os.listdir(tmp_path / "run")) == ["best_ckpt.pth", "latest_ckpt.pth"]
    assert torch.equal(load_checkpoint_file(tmp_path / "run" / "best_ckpt.pth")["model"]["w"], torch.arange(3.0))


def test_failed_save_keeps_previous_file(tmp_path):
    save_checkpoint({"v": 1}, False, tmp_path, "latest")
    with pytest.raises(Exception):
        save_checkpoint({"v": lambda: None}, False, tmp_path, "latest")  # lambdas cannot be pickled
    assert os.listdir(tmp_path) == ["latest_ckpt.pth"]
    assert load_checkpoint_file(tmp_path / "latest_ckpt.pth")["v"] == 1


def test_save_removes_temporaries_of_killed_saves(tmp_path):
    save_checkpoint({"v": 1}, False, tmp_path, "latest")
    for name in (".latest_ckpt.pth.k1ll3d.tmp", ".best_ckpt.pth.x7q2ab.tmp", ".notes.tmp"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 half a checkpoint")
    save_checkpoint({"v": 2}, False, tmp_path, "last_epoch")
    assert sorted(os.listdir(tmp_path)) == [".notes.tmp", "last_epoch_ckpt.pth", "latest_ckpt.pth"]
    assert load_checkpoint_file(tmp_path / "latest_ckpt.pth")["v"] == 1
