"""tools/demo.py with the real COCO nano weights on dog.jpg, plus folder/video modes and class names."""
import os
import shutil

import cv2
import numpy as np

from tests.fixtures.tiny_coco import make_tiny_coco, write_exp_file
from tests.tools.conftest import load_tool

EXPECTED = {"dog": [133, 207, 326, 543], "bicycle": [52, 137, 572, 424], "car": [466, 78, 692, 171]}


def test_image_demo_draws_dog_bicycle_car(tmp_path, monkeypatch, fixtures_dir, real_nano_ckpt):
    demo = load_tool("demo")
    monkeypatch.chdir(tmp_path)
    image = tmp_path / "dog.jpg"
    shutil.copy(fixtures_dir / "dog.jpg", image)
    results = demo.run(["image", "-n", "yolox-nano", "-c", str(real_nano_ckpt), "--path", str(image),
                        "--conf", "0.3", "--nms", "0.45", "--tsize", "416", "--save_result", "--device", "cpu"])
    found = {det["name"]: det for det in results[0]["detections"]}
    assert set(EXPECTED) <= set(found)
    for name, box in EXPECTED.items():
        assert np.abs(np.array(found[name]["box"]) - box).max() <= 2, (name, found[name])
    assert found["dog"]["score"] > 0.8

    saved = results[0]["saved"]
    assert os.path.abspath(saved).startswith(str(tmp_path / "YOLOX_outputs" / "yolox_nano" / "vis_res"))
    drawn, original = cv2.imread(saved), cv2.imread(str(image))
    assert drawn.shape == original.shape
    changed = np.abs(drawn.astype(int) - original.astype(int)).sum(axis=2) > 60
    for x1, y1, x2, y2 in EXPECTED.values():
        left_edge = changed[y1 + 20:y2 - 20, max(x1 - 2, 0):x1 + 3]
        assert left_edge.any(axis=1).mean() > 0.9  # the box's left side is drawn
    assert changed[300:340, 400:440].mean() < 0.05  # far from every box the image is untouched


def test_folder_and_video_modes(tmp_path, monkeypatch, fixtures_dir, real_nano_ckpt):
    demo = load_tool("demo")
    monkeypatch.chdir(tmp_path)
    small = cv2.resize(cv2.imread(str(fixtures_dir / "dog.jpg")), (256, 192))
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), small)
    cv2.imwrite(str(tmp_path / "imgs" / "sub" / "b.jpg"), small)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    common = ["-n", "yolox-nano", "-c", str(real_nano_ckpt), "--tsize", "256", "--save_result"]
    results = demo.run(["image", "--path", str(tmp_path / "imgs"), *common])
    assert [r["image"].split("/")[-1] for r in results] == ["a.png", "b.jpg"]
    assert all(r["saved"] and cv2.imread(r["saved"]) is not None for r in results)

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (256, 192))
    for _ in range(2):
        writer.write(small)
    writer.release()
    saved = demo.run(["video", "--path", str(video), *common])
    capture = cv2.VideoCapture(saved)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2


def test_class_names_come_from_the_exp_dataset(tmp_path):
    from yolox.exp import get_exp

    demo = load_tool("demo")
    data = make_tiny_coco(tmp_path / "data", num_train=1, num_val=1)
    exp = get_exp(str(write_exp_file(tmp_path / "names_exp.py", data, tmp_path / "out")))
    assert demo.exp_class_names(exp) == ("square", "disc")
    exp.data_dir = str(tmp_path / "missing")
    assert demo.exp_class_names(exp) == ("person", "bicycle")
    exp.class_names = ["crater", "rock"]
    assert demo.exp_class_names(exp) == ("crater", "rock")


def test_unreadable_image_is_one_clear_error(tmp_path, real_nano_ckpt):
    import pytest

    demo = load_tool("demo")
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        demo.run(["image", "-n", "yolox-nano", "-c", str(real_nano_ckpt), "--path", str(missing), "--tsize", "128"])
