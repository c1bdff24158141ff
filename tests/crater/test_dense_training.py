"""A dense crater field trains with every box: label rows and detections per image follow the data."""
import json
from pathlib import Path

import pytest

import yolox.models.yolox_loss as yolox_loss
from tests.conftest import loguru_messages
from tests.crater.runs import NANO_EXP, crater_main
from yolox.exp import get_exp
from yolox.models.assignment import count_gts
from yolox.synthetic.craters import generate_synthetic_craters

DROP_WARNING = "extra boxes are dropped"
DENSE_256 = dict(img_size=256, min_radius=1.5, max_radius_fraction=0.08, craters_per_image=(600, 700),
                 size_slope=1.2)


@pytest.fixture(scope="module")
def dense_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dense")
    generate_synthetic_craters(root, num_train=2, num_val=1, seed=0, **DENSE_256)
    return root


def boxes_per_image(data_dir: Path, split: str) -> list:
    coco = json.loads((data_dir / "annotations" / f"instances_{split}2017.json").read_text())
    return sorted(sum(a["image_id"] == image["id"] for a in coco["annotations"]) for image in coco["images"])


def test_dense_field_trains_without_dropping_a_label(dense_dir, tmp_path, monkeypatch, one_thread):
    train_counts = boxes_per_image(dense_dir, "train")
    assert min(train_counts) >= 600
    seen = []
    original = yolox_loss.compute_losses

    def recording(outputs, labels, *args, **kwargs):
        seen.append(sorted(count_gts(labels).tolist()))
        return original(outputs, labels, *args, **kwargs)

    monkeypatch.setattr(yolox_loss, "compute_losses", recording)
    monkeypatch.chdir(tmp_path)
    argv = ["-f", NANO_EXP, "--data-dir", str(dense_dir), "-c", "none", "-b", "2",
            "input_size", "(256,256)", "test_size", "(256,256)", "random_size", "(8,8)", "max_epoch", "2",
            "warmup_epochs", "0", "no_aug_epochs", "0", "eval_interval", "2", "data_num_workers", "0",
            "mosaic_prob", "0.0", "output_dir", str(tmp_path / "out")]
    crater_main(argv)
    log = (tmp_path / "out" / "yolox_nano_crater" / "train_log.txt").read_text()
    assert DROP_WARNING not in log and "label caps: max_labels" in log
    headroom_rows = -(-train_counts[-1] * 5 // 4)
    assert f"label caps: max_labels = {headroom_rows}  (densest train image {train_counts[-1]} boxes" in log
    val_dets = max(-(-boxes_per_image(dense_dir, "val")[-1] * 5 // 4), 100)
    assert f"label caps: eval_max_dets = {val_dets}  (densest val image" in log
    # the 2 training steps (after the batch probe's) each held both images with all of their boxes
    assert seen[-2:] == [train_counts, train_counts]


def test_mosaic_samples_of_a_dense_field_keep_every_box(dense_dir, one_thread):
    exp = get_exp(NANO_EXP)
    exp.data_dir, exp.input_size, exp.data_num_workers, exp.seed = str(dense_dir), (256, 256), 0, 0
    exp.mosaic_prob, exp.enable_mixup, exp.mixup_prob = 1.0, True, 1.0
    with loguru_messages("WARNING") as warnings:
        loader = exp.get_data_loader(batch_size=2, is_distributed=False)
        batches = [next(iter(loader)) for _ in range(2)]
    assert exp.max_labels == 5 * -(-boxes_per_image(dense_dir, "train")[-1] * 5 // 4)
    assert not [line for line in warnings if DROP_WARNING in line]
    for _, labels, *_ in batches:
        assert labels.shape[1] == exp.max_labels and int(count_gts(labels).max()) < exp.max_labels


def test_caps_set_on_the_command_line_are_kept(dense_dir):
    exp = get_exp(NANO_EXP)
    exp.data_dir = str(dense_dir)
    exp.merge(["max_labels", "3000", "eval_max_dets", "1500"])
    with loguru_messages("INFO") as lines:
        assert exp.label_caps() == {"max_labels": 3000, "eval_max_dets": 1500}
    assert "label caps: max_labels = 3000  (set by the exp)" in lines
