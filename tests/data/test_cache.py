import numpy as np

from tests.data.synth import random_coco_set
from yolox.data import COCODataset


def test_ram_cache_serves_copies_of_resized_images(tmp_path, log_lines):
    root = random_coco_set(tmp_path, num_images=4)
    plain = COCODataset(str(root), img_size=(32, 32))
    cached = COCODataset(str(root), img_size=(32, 32), cache=True, cache_type="ram")
    assert cached.cache and len(cached.imgs) == 4
    for index in range(4):
        np.testing.assert_array_equal(cached.read_img(index), plain.read_img(index))
    cached.read_img(0)[:] = 0
    assert cached.imgs[0].any()  # callers get a copy
    assert any("cached 4/4 images" in line and "ETA" in line for line in log_lines)


def test_ram_cache_falls_back_when_memory_is_short(tmp_path, monkeypatch, log_lines):
    import psutil

    class TinyMemory:
        available = 10

    root = random_coco_set(tmp_path, num_images=3)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: TinyMemory())
    dataset = COCODataset(str(root), img_size=(32, 32), cache=True, cache_type="ram")
    assert dataset.cache is False and dataset.imgs is None
    assert dataset.pull_item(0)[0].shape[:2] == (24, 32)
    assert any("reading images from disk instead" in line for line in log_lines)


def test_disk_cache_written_once_and_reused(tmp_path, log_lines):
    root = random_coco_set(tmp_path, num_images=3)
    plain = COCODataset(str(root), img_size=(32, 32))
    first = COCODataset(str(root), img_size=(32, 32), cache=True, cache_type="disk")
    files = sorted(p.name for p in (root / "cache_train2017" / "train2017").iterdir())
    assert files == ["img0.npy", "img1.npy", "img2.npy"]
    assert not (root / "cache_train2017.partial").exists()
    second = COCODataset(str(root), img_size=(32, 32), cache=True, cache_type="disk")
    assert any("Found disk cache" in line for line in log_lines)
    for index in range(3):
        np.testing.assert_array_equal(second.read_img(index), plain.read_img(index))
        np.testing.assert_array_equal(first.read_img(index), plain.read_img(index))
