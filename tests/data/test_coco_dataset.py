import numpy as np
import pytest

from tests.data.synth import coco_dict, write_coco, write_csv, write_yolo
from yolox.data import COCODataset, TrainTransform
from yolox.data.datasets import build_detection_dataset

IMAGES = [("x.png", (40, 80), [(10, 10, 20, 10, 5)]), ("y.png", (80, 40), [(0, 0, 8, 8, 2)])]
NAMES = {5: "five", 2: "two"}  # json order is not id order


def annotations(images=IMAGES):
    return coco_dict(images, NAMES)


def dataset_from(tmp_path, data, images=IMAGES, **kwargs):
    write_coco(tmp_path, data, images)
    return COCODataset(str(tmp_path), img_size=(40, 40), **kwargs)


def test_sorted_category_mapping_crowd_excluded_and_ratio(tmp_path):
    data = annotations()
    data["annotations"].append({"id": 99, "image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5], "area": 25,
                                "iscrowd": 1})
    dataset = dataset_from(tmp_path, data)
    assert dataset.class_ids == [2, 5]
    assert dataset._classes == ("five", "two")  # upstream keeps getCatIds() order for names
    res, img_info, resized_info, file_name = dataset.annotations[0]
    np.testing.assert_array_equal(res, [[5, 5, 15, 10, 1]])  # crowd box gone, x0.5, category 5 -> label 1
    assert (img_info, resized_info, file_name) == ((40, 80), (20, 40), "x.png")
    img, target, info, img_id = dataset[0]
    assert img.shape == (20, 40, 3) and info == (40, 80) and img_id.tolist() == [1]


def test_preproc_applied_and_tuple_indices_reseed(tmp_path):
    dataset = dataset_from(tmp_path, annotations(), preproc=TrainTransform(max_labels=4))
    first = dataset[(False, 0, 123)]
    second = dataset[(True, 0, 123)]
    assert dataset.enable_mosaic is True
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[0].shape == (3, 40, 40) and first[1].shape == (4, 5)


def test_box_cleanup_clips_and_counts(tmp_path, log_lines):
    data = annotations()
    data["annotations"] += [
        {"id": 10, "image_id": 1, "category_id": 5, "bbox": [70, 30, 20, 20], "area": 400},   # clipped
        {"id": 11, "image_id": 1, "category_id": 5, "bbox": [-4, 2, 10, 4], "area": 40},      # clipped, x2 stays 6
        {"id": 12, "image_id": 1, "category_id": 5, "bbox": [5, 5, 0, 4], "area": 0},         # no width
        {"id": 13, "image_id": 1, "category_id": 5, "bbox": [5, 5, 4, -3], "area": 12},       # negative height
        {"id": 14, "image_id": 1, "category_id": 5, "bbox": [90, 5, 4, 4], "area": 16},       # outside entirely
    ]
    dataset = dataset_from(tmp_path, data)
    res = dataset.annotations[0][0]
    np.testing.assert_array_equal(res[:, :4] / 0.5, [[10, 10, 30, 20], [70, 30, 80, 40], [0, 2, 6, 6]])
    assert (res[:, 4] == 1).all()
    assert any("3 box(es) reach outside their image and were clipped" in line for line in log_lines)
    assert any("3 box(es) with zero or negative width/height" in line for line in log_lines)


def test_background_images_kept_and_counted(tmp_path, log_lines):
    images = IMAGES + [("z.png", (40, 40), []), ("w.png", (40, 40), [])]
    dataset = dataset_from(tmp_path, annotations(images), images)
    assert len(dataset) == 4 and dataset.load_anno(3).shape == (0, 5)
    assert any("2 image(s) without boxes are kept as background images" in line for line in log_lines)


def test_unknown_category_is_a_clear_error(tmp_path):
    data = annotations()
    data["annotations"][1]["category_id"] = 42
    with pytest.raises(ValueError, match=r"annotations\[1\] \(id 2\) has category_id 42, which is not among the "
                                         r"categories \[2, 5\]: add the category"):
        dataset_from(tmp_path, data)


def test_missing_image_is_a_clear_error(tmp_path):
    write_coco(tmp_path, annotations(), IMAGES)
    (tmp_path / "train2017" / "y.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 image files are missing, first .*y\.png \(image id 2\)"):
        COCODataset(str(tmp_path), img_size=(40, 40))


def test_corrupt_image_is_a_clear_error(tmp_path):
    dataset = dataset_from(tmp_path, annotations())
    (tmp_path / "train2017" / "x.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"x\.png \(image id 1\) cannot be decoded: the file is corrupt"):
        dataset.load_image(0)


def test_unparsable_json_is_a_clear_error(tmp_path):
    write_coco(tmp_path, annotations(), IMAGES)
    (tmp_path / "annotations" / "instances_train2017.json").write_text('{"images": [,]}')
    with pytest.raises(ValueError, match=r"instances_train2017\.json is not valid JSON \(line 1, column 13"):
        COCODataset(str(tmp_path), img_size=(40, 40))


def test_json_that_is_not_coco_is_a_clear_error(tmp_path):
    write_coco(tmp_path, {"images": []}, IMAGES)
    with pytest.raises(ValueError, match="missing 'categories' list"):
        COCODataset(str(tmp_path), img_size=(40, 40))


def test_missing_annotation_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations/instances_val2017\.json not found"):
        COCODataset(str(tmp_path), json_file="instances_val2017.json", img_size=(40, 40))


def test_in_memory_dict(tmp_path):
    write_coco(tmp_path, annotations(), IMAGES)
    dataset = COCODataset(str(tmp_path), name="train2017", img_size=(40, 40), coco=annotations())
    assert len(dataset) == 2 and dataset.coco.getImgIds() == [1, 2]


def test_yolo_bad_label_line_names_file_and_line(tmp_path):
    root = write_yolo(tmp_path)
    (root / "train" / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 0.5\n")
    with pytest.raises(ValueError, match=r"a\.txt:2: expected 'class cx cy w h' \(5 numbers\), got 3 values"):
        build_detection_dataset(str(root), "train", (32, 32))


def test_yolo_zero_size_box_skipped_and_counted(tmp_path, log_lines):
    root = write_yolo(tmp_path)
    (root / "train" / "labels" / "a.txt").write_text("0 0.5 0.5 0 0.1\n0 0.5 0.5 0.25 0.25\n")
    dataset = build_detection_dataset(str(root), "train", (64, 64))
    assert len(dataset.annotations[0][0]) == 1
    assert any("1 box(es) with zero or negative width/height" in line for line in log_lines)


def test_csv_bad_number_and_header(tmp_path):
    root = write_csv(tmp_path)
    (root / "train.csv").write_text("image,x,y,diameter\na.png,5,five,4\n")
    with pytest.raises(ValueError, match=r"train\.csv:2: row .* needs numbers in x, y and diameter"):
        build_detection_dataset(str(root), "train", (32, 32))
    (root / "train.csv").write_text("image,lon,lat,diameter\na.png,5,5,4\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) x, y: the first row must name image, x, y, diameter"):
        build_detection_dataset(str(root), "train", (32, 32))


def test_unknown_folder_format_is_explained(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the annotation format"):
        build_detection_dataset(str(tmp_path), "train", (32, 32))


def test_themis_val_loads(themis_dir):
    dataset = build_detection_dataset(str(themis_dir), "val", (416, 416))
    assert len(dataset) == 126 and dataset.class_ids == [1]
    assert sum(len(a[0]) for a in dataset.annotations) == 2929


def test_non_numeric_bbox_is_a_clear_error(tmp_path):
    data = annotations()
    data["annotations"][0]["bbox"] = [1, 2, "3", 4]
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 1\) has bbox \[1, 2, '3', 4\]: expected \[x, y"):
        dataset_from(tmp_path, data)
