"""benchmarks/coco_subset.py: N training tiles chosen by a seed, their boxes with them, validation untouched."""
import json

import pytest

from tests.benchmarks.conftest import load_benchmark


def write_coco_set(root, train_images=10):
    """A COCO-layout set: image i has i % 3 boxes; the validation file is the training one of 3 images."""
    (root / "annotations").mkdir(parents=True)
    for folder in ("train2017", "val2017"):
        (root / folder).mkdir()
    images = [{"id": 100 + i, "file_name": f"t{i}.jpg", "width": 32, "height": 32} for i in range(train_images)]
    boxes = [{"id": 1000 + 10 * i + k, "image_id": 100 + i, "category_id": 1, "bbox": [k, k, 4, 4], "area": 16,
              "iscrowd": 0} for i in range(train_images) for k in range(i % 3)]
    train = {"images": images, "annotations": boxes, "categories": [{"id": 1, "name": "crater"}]}
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(train))
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(dict(train, images=images[:3])) + "\n ")
    return train


def test_subset_holds_n_tiles_with_their_boxes_and_the_validation_file_unchanged(tmp_path):
    subset = load_benchmark("coco_subset")
    source = write_coco_set(tmp_path / "data")
    target = subset.make_coco_subset(str(tmp_path / "data"), str(tmp_path / "sub"), 4, seed=0)
    train = json.loads((target / "annotations" / "instances_train2017.json").read_text())
    kept = {image["id"] for image in train["images"]}
    assert len(kept) == 4 and kept <= {image["id"] for image in source["images"]}
    assert train["annotations"] == [box for box in source["annotations"] if box["image_id"] in kept]
    assert train["categories"] == source["categories"]
    val = "annotations/instances_val2017.json"
    assert (target / val).read_bytes() == (tmp_path / "data" / val).read_bytes()
    assert (target / "train2017").resolve() == (tmp_path / "data" / "train2017").resolve()
    assert (target / "val2017").resolve() == (tmp_path / "data" / "val2017").resolve()


def test_the_choice_depends_on_the_seed_alone_and_a_second_call_replaces_the_first(tmp_path):
    subset = load_benchmark("coco_subset")
    write_coco_set(tmp_path / "data")

    def chosen(target, seed):
        subset.make_coco_subset(str(tmp_path / "data"), str(target), 5, seed=seed)
        train = json.loads((target / "annotations" / "instances_train2017.json").read_text())
        return [image["id"] for image in train["images"]]

    first = chosen(tmp_path / "a", 0)
    assert chosen(tmp_path / "b", 0) == first
    assert chosen(tmp_path / "a", 1) != first


def test_more_tiles_than_the_set_holds_or_no_coco_layout_is_a_one_line_error(tmp_path):
    subset = load_benchmark("coco_subset")
    write_coco_set(tmp_path / "data")
    with pytest.raises(SystemExit, match="has 10 training tiles; give a count from 1 to 10"):
        subset.make_coco_subset(str(tmp_path / "data"), str(tmp_path / "sub"), 11)
    with pytest.raises(SystemExit, match="must be a COCO-layout folder"):
        subset.make_coco_subset(str(tmp_path), str(tmp_path / "sub"), 1)
