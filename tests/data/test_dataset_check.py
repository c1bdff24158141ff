"""The dataset check before training: bad images and boxes of every format, its cache, strict mode,
and images that turn bad after the check."""
import json

import cv2
import numpy as np
import pytest

from tests.data.synth import coco_dict, make_image, write_coco, write_csv, write_yolo
from yolox.data import DataLoader, TrainTransform
from yolox.data.datasets import build_detection_dataset, dataset_check
from yolox.data.datasets.dataset_check import check_coco_dict, check_split
from yolox.data.errors import DataError

# a.png 2 boxes, b.png 3 boxes, c.png none, d.png 1 box; sizes (h, w)
IMAGES = [
    ("a.png", (64, 64), [(8, 8, 16, 16, 1), (40, 30, 8, 8, 1)]),
    ("b.png", (32, 64), [(2, 4, 12, 12, 2), (50, 10, 4, 4, 1), (20, 16, 12, 12, 2)]),
    ("c.png", (64, 32), []),
    ("d.png", (64, 64), [(4, 4, 20, 20, 1)]),
]
WRITERS = {"coco": write_coco, "yolo": write_yolo, "csv": write_csv}


def spoil(root, fmt: str) -> None:
    """Make a.png corrupt and b.png missing (YOLO lists its folder, so there b.png is corrupt too)."""
    folder = {"coco": root / "train2017", "yolo": root / "train" / "images", "csv": root / "train"}[fmt]
    (folder / "a.png").write_bytes(b"\x89PNG but not really")
    if fmt == "yolo":
        (folder / "b.png").write_bytes(b"")
    else:
        (folder / "b.png").unlink()


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_bad_images_are_named_and_skipped(tmp_path, fmt):
    root = WRITERS[fmt](tmp_path, images=IMAGES)
    spoil(root, fmt)
    dataset = build_detection_dataset(str(root), "train", (64, 64))
    check = dataset.data_check
    assert check.images_total == 4 and check.images_ok == 2
    if fmt == "yolo":
        assert check.corrupt == ["a.png", "b.png"] and check.missing == []
    else:
        assert check.corrupt == ["a.png"] and check.missing == ["b.png"]
    assert [ann[3] for ann in dataset.annotations] == ["c.png", "d.png"]
    assert check.without_boxes == ["c.png"] and check.max_boxes_per_image == 1 and check.densest_image == "d.png"
    assert len(dataset[1][1]) == 1


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_strict_data_stops_with_one_line_naming_them(tmp_path, fmt):
    root = WRITERS[fmt](tmp_path, images=IMAGES)
    spoil(root, fmt)
    with pytest.raises(DataError) as info:
        build_detection_dataset(str(root), "train", (64, 64), strict=True)
    message = str(info.value)
    assert "\n" not in message and "a.png" in message and "b.png" in message
    assert "strict_data" in message and "--strict-data" in message


def test_exp_field_strict_data_reaches_the_check(tmp_path):
    from yolox.exp import Exp

    root = write_coco(tmp_path, coco_dict(IMAGES, {1: "crater", 2: "ghost"}), IMAGES)
    (root / "train2017" / "d.png").unlink()
    exp = Exp()
    exp.data_dir, exp.num_classes = str(root), 2
    assert exp.strict_data is False and len(exp.get_dataset()) == 3
    exp.strict_data = True
    with pytest.raises(DataError, match=r"1 missing \(d\.png\)"):
        exp.get_dataset()


def test_size_other_than_annotated_is_a_bad_image(tmp_path):
    data = coco_dict(IMAGES, {1: "crater", 2: "ghost"})
    data["images"][3].update(height=32, width=48)  # d.png is 64 x 64 on disk
    write_coco(tmp_path, data, IMAGES)
    check = check_split(str(tmp_path), "train")
    assert check.size_mismatch == ["d.png"] and check.bad_images == ["d.png"] and check.images_ok == 3


def test_boxes_clipped_dropped_and_of_unknown_category(tmp_path):
    data = coco_dict(IMAGES, {1: "crater", 2: "ghost"})
    data["annotations"] += [
        {"id": 50, "image_id": 4, "category_id": 1, "bbox": [50, 50, 30, 30], "area": 900},  # clipped, kept
        {"id": 51, "image_id": 4, "category_id": 1, "bbox": [70, 5, 4, 4], "area": 16},      # outside: dropped
        {"id": 52, "image_id": 3, "category_id": 1, "bbox": [5, 5, 0, 4], "area": 0},        # no width: dropped
        {"id": 53, "image_id": 1, "category_id": 9, "bbox": [5, 5, 4, 4], "area": 16},       # unknown category
    ]
    write_coco(tmp_path, data, IMAGES)
    dataset = build_detection_dataset(str(tmp_path), "train", (64, 64))
    check = dataset.data_check
    assert (check.boxes_total, check.boxes_kept, check.boxes_clipped, check.boxes_dropped) == (10, 7, 2, 3)
    assert check.unknown_category == 1 and check.clipped_files == ["d.png"]
    assert check.dropped_files == ["a.png", "c.png", "d.png"]
    assert check.max_boxes_per_image == 3 and check.densest_image == "b.png"
    assert [len(ann[0]) for ann in dataset.annotations] == [2, 3, 0, 2]
    with pytest.raises(DataError, match=r"1 box\(es\) of an unknown category"):
        build_detection_dataset(str(tmp_path), "train", (64, 64), strict=True)


def test_yolo_class_outside_names_is_dropped_and_named(tmp_path):
    root = write_yolo(tmp_path, images=IMAGES)
    (root / "train" / "labels" / "a.txt").write_text("7 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.25 0.25\n")
    check = build_detection_dataset(str(root), "train", (64, 64)).data_check
    assert check.unknown_category == 1 and check.dropped_files == ["a.png"]


def test_summary_names_twenty_files_per_kind_and_counts_the_rest(tmp_path, log_lines):
    images = [(f"img{i:02d}.png", (16, 16), [(2, 2, 8, 8, 1)]) for i in range(26)]
    root = write_coco(tmp_path, coco_dict(images, {1: "crater"}), images)
    for i in range(25):
        (root / "train2017" / f"img{i:02d}.png").unlink()
    build_detection_dataset(str(root), "train", (32, 32))
    table = next(line for line in log_lines if "dataset check of" in line)
    missing_row = next(row for row in table.splitlines() if row.startswith("| images missing"))
    assert missing_row.split("|")[2].strip() == "25"
    assert "img19.png and 5 more" in missing_row and "img20.png" not in missing_row
    assert "images ok" in table and "boxes dropped" in table and "images without boxes" in table


def test_second_run_reads_no_image_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    root = write_coco(tmp_path, coco_dict(IMAGES, {1: "crater", 2: "ghost"}), IMAGES)
    reads = []
    real = dataset_check.content_verdict
    monkeypatch.setattr(dataset_check, "content_verdict", lambda path: reads.append(path) or real(path))
    first = check_split(str(root), "train")
    assert len(reads) == 4 and (root / "annotations" / "instances_train2017.json.train.yolox_check").is_file()
    reads.clear()
    assert check_split(str(root), "train") == first and reads == []
    (root / "train2017" / "c.png").write_bytes(b"truncated")
    third = check_split(str(root), "train")
    assert [p.rsplit("/", 1)[-1] for p in reads] == ["c.png"] and third.corrupt == ["c.png"]


def test_cache_falls_back_to_the_user_cache_dir(tmp_path, monkeypatch):
    root = write_coco(tmp_path / "data", coco_dict(IMAGES, {1: "crater", 2: "ghost"}), IMAGES)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    data = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    # a regular file where the folder should be: unwritable even for root, unlike chmod
    (tmp_path / "not_a_folder").write_text("")
    beside = str(tmp_path / "not_a_folder" / "train.yolox_check")
    reads = []
    real = dataset_check.content_verdict
    monkeypatch.setattr(dataset_check, "content_verdict", lambda path: reads.append(path) or real(path))
    first = check_coco_dict(data, str(root / "train2017"), "src", beside)
    cached = list((tmp_path / "user_cache" / "yolox" / "dataset_check").iterdir())
    assert len(cached) == 1 and json.loads(cached[0].read_text())["result"]["images_ok"] == 4
    reads.clear()
    assert check_coco_dict(data, str(root / "train2017"), "src", beside) == first and reads == []


def test_check_result_exposes_the_densest_image_of_train_and_val(tmp_path):
    write_coco(tmp_path, coco_dict(IMAGES, {1: "crater", 2: "ghost"}), IMAGES)
    val = IMAGES[2:]
    write_coco(tmp_path, coco_dict(val, {1: "crater", 2: "ghost"}), val, split="val")
    assert check_split(str(tmp_path), "train").max_boxes_per_image == 3
    assert check_split(str(tmp_path), "val").max_boxes_per_image == 1


def test_truncated_jpeg_is_corrupt(tmp_path):
    images = [("a.jpg", (64, 64), [(2, 2, 8, 8, 1)]), ("b.jpg", (64, 64), [(2, 2, 8, 8, 1)])]
    root = write_coco(tmp_path, coco_dict(images, {1: "crater"}), images)
    path = root / "train2017" / "b.jpg"
    content = path.read_bytes()
    path.write_bytes(content[:len(content) * 3 // 4])
    assert cv2.imread(str(path)) is not None  # OpenCV alone would train on a half-grey image
    assert check_split(str(root), "train").corrupt == ["b.jpg"]


def test_all_images_bad_is_a_one_line_error(tmp_path):
    root = write_coco(tmp_path, coco_dict(IMAGES[:1], {1: "crater"}), IMAGES[:1])
    (root / "train2017" / "a.png").unlink()
    with pytest.raises(DataError, match="none of its 1 images is usable"):
        build_detection_dataset(str(root), "train", (64, 64))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_image_spoilt_after_the_check_is_skipped_and_replaced(tmp_path, num_workers):
    from tests.conftest import loguru_messages

    root = write_coco(tmp_path, coco_dict(IMAGES, {1: "crater", 2: "ghost"}), IMAGES)
    dataset = build_detection_dataset(str(root), "train", (64, 64), preproc=TrainTransform(max_labels=4))
    (root / "train2017" / "b.png").write_bytes(b"broken after the check")
    with loguru_messages("WARNING") as warnings:
        batches = list(DataLoader(dataset, batch_size=2, num_workers=num_workers))
    ids = [int(i) for batch in batches for i in batch[3]]
    assert ids == [1, 3, 3, 4]  # b.png (id 2) replaced by the next image, c.png (id 3)
    assert dataset.skipped.indices() == [1] and len(dataset.skipped) == 1
    if num_workers == 0:  # workers log to their own stderr
        assert len(warnings) == 1 and "b.png" in warnings[0] and "cannot be decoded" in warnings[0]
    again = dataset.pull_item(1)
    assert int(again[3][0]) == 3 and np.array_equal(again[0].shape, (64, 32, 3))
