import numpy as np

from tests.data.synth import random_coco_set
from yolox.data import COCODataset, ConcatDataset, MixConcatDataset, TrainTransform


def test_concat_routes_pull_item_and_mosaic_tuples(tmp_path):
    first = COCODataset(str(random_coco_set(tmp_path / "a", num_images=3, seed=1)), img_size=(32, 32),
                        preproc=TrainTransform(max_labels=8))
    second = COCODataset(str(random_coco_set(tmp_path / "b", num_images=2, seed=2)), img_size=(32, 32),
                         preproc=TrainTransform(max_labels=8))
    both = MixConcatDataset([first, second])
    assert len(both) == 5 and both.input_dim == (32, 32)
    np.testing.assert_array_equal(both.pull_item(3)[1], second.pull_item(0)[1])
    np.testing.assert_array_equal(both.pull_item(-1)[1], second.pull_item(1)[1])
    routed = both[(False, 4, 9)]
    direct = second[(False, 1, 9)]
    np.testing.assert_array_equal(routed[0], direct[0])
    assert second.enable_mosaic is False
    assert ConcatDataset([first, second]).pull_item(2)[3].tolist() == first.pull_item(2)[3].tolist()
