import cv2
import numpy as np
import pytest

from yolox.data.datasets.voc import VOC_CLASSES, VOCDetection

XML = """<annotation><size><width>80</width><height>40</height><depth>3</depth></size>
<object><name>dog</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>5.7</ymin><xmax>31</xmax>
<ymax>21</ymax></bndbox></object>
<object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>
<ymax>9</ymax></bndbox></object></annotation>"""


def write_voc(root, xml=XML):
    year = root / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (year / sub).mkdir(parents=True, exist_ok=True)
    (year / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n")
    (year / "Annotations" / "000001.xml").write_text(xml)
    cv2.imwrite(str(year / "JPEGImages" / "000001.jpg"), np.full((40, 80, 3), 90, np.uint8))
    return root


def test_voc_items_zero_based_scaled_and_difficult_kept(tmp_path):
    dataset = VOCDetection(str(write_voc(tmp_path)), image_sets=[("2007", "trainval")], img_size=(20, 20))
    assert len(VOC_CLASSES) == 20 and dataset.class_ids == list(range(20))
    img, res, img_info, index = dataset.pull_item(0)
    assert img.shape == (10, 20, 3) and img_info == (40, 80) and index == 0
    np.testing.assert_array_equal(res, [[10 / 4, 4 / 4, 30 / 4, 20 / 4, 11], [0, 0, 8 / 4, 8 / 4, 7]])


def test_voc_unknown_class_and_bad_xml_are_named(tmp_path):
    write_voc(tmp_path, XML.replace("<name>dog</name>", "<name>crater</name>"))
    with pytest.raises(ValueError, match=r"000001\.xml: object class 'crater' is not among the dataset classes"):
        VOCDetection(str(tmp_path), image_sets=[("2007", "trainval")])
    (tmp_path / "VOC2007" / "Annotations" / "000001.xml").write_text("<annotation>")
    with pytest.raises(ValueError, match=r"000001\.xml is not valid XML"):
        VOCDetection(str(tmp_path), image_sets=[("2007", "trainval")])
