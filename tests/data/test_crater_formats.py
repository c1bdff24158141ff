import json

import numpy as np
import pytest

from tests.data.synth import write_coco, write_csv, write_yolo
from yolox.data.datasets import build_detection_dataset, check_num_classes, count_classes, detect_format
from yolox.tools.convert_craters import convert, main as convert_main
from yolox.data.datasets.yolo_txt import parse_data_yaml

WRITERS = {"coco": write_coco, "yolo": write_yolo, "csv": write_csv}


def training_records(dataset):
    """Per file name: (res array, original size, resized size), plus class ids and names."""
    records = {anno[3]: (anno[0], anno[1], anno[2]) for anno in dataset.annotations}
    return records, dataset.class_ids, dataset._classes


def test_three_formats_give_identical_records(tmp_path):
    built = {}
    for fmt, writer in WRITERS.items():
        root = writer(tmp_path / fmt)
        assert detect_format(str(root)) == fmt
        built[fmt] = training_records(build_detection_dataset(str(root), "train", (32, 48)))
    reference, ref_ids, ref_names = built["coco"]
    assert ref_names == ("crater", "ghost") and len(reference) == 3
    for fmt in ("yolo", "csv"):
        records, class_ids, names = built[fmt]
        assert (class_ids, names) == (ref_ids, ref_names), fmt
        assert records.keys() == reference.keys(), fmt
        for file_name, (res, size, resized) in reference.items():
            np.testing.assert_array_equal(records[file_name][0], res, err_msg=f"{fmt} {file_name}")
            assert records[file_name][1:] == (size, resized), fmt


def test_items_load_from_every_format(tmp_path):
    for fmt, writer in WRITERS.items():
        dataset = build_detection_dataset(str(writer(tmp_path / fmt)), "train", (32, 32))
        img, res, info, _ = dataset.pull_item(1)
        assert img.shape == (16, 32, 3) and info == (32, 64) and res.shape == (3, 5), fmt


def test_convert_tool_writes_a_coco_folder_with_equal_records(tmp_path):
    for fmt in ("yolo", "csv"):
        src = WRITERS[fmt](tmp_path / fmt)
        out = tmp_path / f"{fmt}_coco"
        assert convert_main([str(src), "--out", str(out), "--copy"]) == 0
        converted = build_detection_dataset(str(out), "train", (32, 32))
        direct = build_detection_dataset(str(src), "train", (32, 32))
        assert [a[0].tolist() for a in converted.annotations] == [a[0].tolist() for a in direct.annotations]
        np.testing.assert_array_equal(converted.pull_item(0)[0], direct.pull_item(0)[0])


def test_convert_tool_reports_bad_source_in_one_line(tmp_path, log_lines):
    (tmp_path / "empty").mkdir()
    assert convert_main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert len(log_lines) == 1 and "cannot tell the annotation format" in log_lines[0]
    assert not (tmp_path / "o").exists()


def test_num_classes_check_names_the_fix(tmp_path):
    root = write_yolo(tmp_path / "y")
    assert count_classes(str(root)) == 2
    assert check_num_classes(str(root), 2) == 2
    with pytest.raises(ValueError, match=r"has 2 classes but the exp says num_classes=80: set num_classes = 2"):
        check_num_classes(str(root), 80)
    dataset = build_detection_dataset(str(write_csv(tmp_path / "c")), "train", (32, 32))
    with pytest.raises(ValueError, match=r"csv dataset .* has 2 classes but the exp says num_classes=1"):
        check_num_classes(dataset, 1)


def test_data_yaml_forms(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_text("path: .  # root\ntrain: ../train/images\nnames:\n  - crater\n  - 'old crater'\nnc: 2\n")
    assert parse_data_yaml(str(path)) == {"path": ".", "train": "../train/images", "names": ["crater", "old crater"],
                                          "nc": 2}
    path.write_text("names:\n  0: crater\n  1: pit\n")
    assert parse_data_yaml(str(path))["names"] == {0: "crater", 1: "pit"}
    path.write_text("names: [crater, pit]\n")
    assert parse_data_yaml(str(path))["names"] == ["crater", "pit"]


def test_yolo_polygon_line_becomes_its_bounding_box(tmp_path):
    root = write_yolo(tmp_path, images=[("p.png", (64, 64), [])], names={1: "crater"})
    (root / "train" / "labels" / "p.txt").write_text("0 0.25 0.25 0.5 0.25 0.5 0.75 0.25 0.75\n")
    dataset = build_detection_dataset(str(root), "train", (64, 64))
    np.testing.assert_array_equal(dataset.annotations[0][0], [[16, 16, 32, 48, 0]])


def test_csv_without_class_column_is_one_crater_class(tmp_path):
    root = write_csv(tmp_path, images=[("a.png", (64, 64), [(8, 8, 16, 16, 1)])], names={1: "crater"})
    (root / "train.csv").write_text("Image,X,Y,Diameter\na.png,16,16,16\n")
    dataset = build_detection_dataset(str(root), "train", (64, 64))
    assert dataset._classes == ("crater",)
    np.testing.assert_array_equal(dataset.annotations[0][0], [[8, 8, 24, 24, 0]])


def test_coco_json_written_by_converter_is_plain(tmp_path):
    src = write_csv(tmp_path / "c")
    out = tmp_path / "o"
    [json_path] = convert(str(src), str(out))
    data = json.loads(open(json_path).read())
    assert [c["name"] for c in data["categories"]] == ["crater", "ghost"]
    assert len(data["annotations"]) == 5 and all(a["iscrowd"] == 0 for a in data["annotations"])


def test_roboflow_yaml_with_metadata_block_and_float_class(tmp_path):
    root = write_yolo(tmp_path, images=[("a.png", (64, 64), [(8, 8, 16, 16, 1)])], names={1: "crater"})
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 1\nnames: ['crater']\n\n"
        "roboflow:\n  workspace: mars\n  project: craters\n  version: 2\n  license: CC BY 4.0\n"
        "  url: https://universe.roboflow.com/mars/craters/dataset/2\n"
    )
    (root / "train" / "labels" / "a.txt").write_text("0.0 0.25 0.25 0.25 0.25\n")
    dataset = build_detection_dataset(str(root), "train", (64, 64))
    np.testing.assert_array_equal(dataset.annotations[0][0], [[8, 8, 24, 24, 0]])
    with pytest.raises(ValueError, match="no image folder for split 'val'"):
        build_detection_dataset(str(root), "val", (64, 64))
