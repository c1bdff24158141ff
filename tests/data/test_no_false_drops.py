"""Valid input is never dropped: one test per place that rejects images, boxes or annotation rows."""
import json

import cv2
import numpy as np

from tests.data.synth import coco_dict, make_image
from yolox.data.datasets import VOCDetection, build_detection_dataset
from yolox.data.datasets.check_cache import cache_file_for
from yolox.data.datasets.read_crop import ReadCropDataset

# 6 PNG files named .jpg, 2 real JPEGs and 1 PNG named .png: 9 images, 13 boxes
MISNAMED = [(f"png{i}.jpg", (48, 64), [(4 + i, 4, 10, 10, 1), (30, 20, 8, 12, 1)]) for i in range(6)]
GENUINE = [("real0.jpg", (40, 40), []), ("real1.jpeg", (32, 48), [(1, 1, 5, 5, 1)])]
IMAGES = MISNAMED + GENUINE + [("plain.png", (64, 32), [])]


def write_set(root, images=IMAGES, data=None):
    """COCO layout whose image files are encoded by their stem (png*, real*, plain) whatever the name."""
    data = coco_dict(images, {1: "crater"}) if data is None else data
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    (root / "train2017").mkdir()
    for seed, (file_name, (h, w), _) in enumerate(images):
        encoding = ".jpg" if file_name.startswith("real") else ".png"
        (root / "train2017" / file_name).write_bytes(cv2.imencode(encoding, make_image(h, w, seed))[1].tobytes())
    return root


def boxes_in(dataset) -> int:
    return sum(len(dataset.load_anno(i)) for i in range(len(dataset)))


def test_png_files_named_jpg_lose_nothing(tmp_path, log_lines):
    root = write_set(tmp_path)
    dataset = build_detection_dataset(str(root), "train", (64, 64))
    check = dataset.data_check
    assert len(dataset) == 9 and check.images_ok == 9 and check.bad_images == []
    assert boxes_in(dataset) == check.boxes_kept == 13 and check.boxes_dropped == 0
    assert check.misnamed == {"PNG files named .jpg": [name for name, _, _ in MISNAMED]}
    assert check.name_notes() == ["6 of 9 images are PNG files named .jpg: read by content"]
    assert any("6 of 9 images are PNG files named .jpg: read by content" in line for line in log_lines)
    img, labels, _, _ = dataset.pull_item(0)
    assert img.shape == (48, 64, 3) and len(labels) == 2
    image, rows, meta, _ = ReadCropDataset(dataset, (64, 64), mosaic=False)[0]
    assert tuple(image.shape) == (64, 64, 3) and len(rows) == 2


def test_a_stale_cache_that_called_them_corrupt_is_not_reused(tmp_path):
    root = write_set(tmp_path)
    stamp = lambda name: [(root / "train2017" / name).stat().st_size, (root / "train2017" / name).stat().st_mtime_ns]
    stale = {"version": 1, "images_dir": str(root / "train2017"),
             "images": {name: {"stamp": stamp(name), "size": None} for name, _, _ in IMAGES}}
    cache = cache_file_for(str(root / "annotations" / "instances_train2017.json"), "train")
    with open(cache, "w", encoding="utf-8") as f:
        json.dump(stale, f)
    assert build_detection_dataset(str(root), "train", (64, 64)).data_check.images_ok == 9


def test_coco_boxes_are_judged_by_their_own_size(tmp_path):
    data = coco_dict(MISNAMED[:1], {1: "crater"})
    data["annotations"][0]["area"] = 0           # bbox-only exports often write area 0 ...
    data["annotations"][1].pop("area")
    data["annotations"][1]["iscrowd"] = None      # ... or null for iscrowd
    dataset = build_detection_dataset(str(write_set(tmp_path, MISNAMED[:1], data)), "train", (64, 64))
    assert boxes_in(dataset) == dataset.data_check.boxes_kept == 2


def test_yolo_label_files_as_editors_write_them(tmp_path):
    images = tmp_path / "train" / "images"
    labels = tmp_path / "train" / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    (tmp_path / "data.yaml").write_bytes("\ufefftrain: train/images\r\nnames: ['crater']\r\n".encode("utf-8"))
    (images / "t.jpg").write_bytes(cv2.imencode(".png", make_image(40, 80, 0))[1].tobytes())  # misnamed too
    (images / "._t.jpg").write_bytes(b"\x00\x05\x16\x07 macOS metadata")
    lines = "\ufeff0 0.5 0.5 0.25 0.25  \r\n\r\n0 2.5e-1 5E-1 1e-1 1.0e-1\t\r\n\n"  # BOM, CRLF, blanks, 1e-1
    (labels / "t.txt").write_bytes(lines.encode("utf-8"))
    dataset = build_detection_dataset(str(tmp_path), "train", (80, 80))
    check = dataset.data_check
    assert check.images_total == 1 and check.bad_images == [] and boxes_in(dataset) == 2
    np.testing.assert_allclose(dataset.load_anno(0)[1][:4], [16, 18, 24, 22])  # cx 20, cy 20, 8 x 4 px


def test_crater_csv_as_spreadsheets_write_it(tmp_path):
    split = tmp_path / "train"
    (split / "deep").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "deep/c.png"):
        (split / name).write_bytes(cv2.imencode(".png", make_image(64, 64, 1))[1].tobytes())
    rows = ['\ufeff"Image","Extra","X","Y","Diameter","Class"', 'a.png,x,10,10,8,crater', 'b.jpg,y,"20",20,4',
            'deep/c.png,,3.2e1,32,1E1,crater']
    (tmp_path / "train.csv").write_bytes("\r\n".join(rows).encode("utf-8"))
    check = build_detection_dataset(str(tmp_path), "train", (64, 64)).data_check
    assert (check.images_ok, check.bad_images, check.boxes_kept) == (3, [], 3)
    assert check.misnamed == {"PNG files named .jpg": ["b.jpg"]}
    (tmp_path / "train.csv").write_text("image;x;y;diameter\na.png;10,5;10;8\nb.jpg;20;20;4,25\n")
    dataset = build_detection_dataset(str(tmp_path), "train", (64, 64))
    assert dataset.data_check.boxes_kept == 2
    np.testing.assert_allclose(dataset.load_anno(0)[0][:4], [6.5, 6, 14.5, 14])


def test_voc_with_png_images_zero_size_and_empty_difficult(tmp_path):
    year = tmp_path / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (year / sub).mkdir(parents=True)
    (year / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n")
    (year / "Annotations" / "000001.xml").write_text(
        "<annotation><size><width>0</width><height>0</height></size><object><name>dog</name><difficult/>"
        "<bndbox><xmin>11</xmin><ymin>5</ymin><xmax>31</xmax><ymax>21</ymax></bndbox></object></annotation>")
    cv2.imwrite(str(year / "JPEGImages" / "000001.png"), np.full((40, 80), 90, np.uint8))
    dataset = VOCDetection(str(tmp_path), image_sets=[("2007", "trainval")], img_size=(80, 80))
    img, res, img_info, _ = dataset.pull_item(0)
    assert img.shape == (40, 80, 3) and img_info == (40, 80)
    np.testing.assert_array_equal(res, [[10, 4, 30, 20, 11]])
