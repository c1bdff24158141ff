"""Pascal VOC detection dataset (VOC<year>/Annotations, ImageSets/Main, JPEGImages)."""
import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError, DataFileNotFoundError
from ..image_files import read_image_file
from .datasets_wrapper import CacheDataset
from .image_folder import IMAGE_EXTENSIONS, image_size

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


class AnnotationTransform:
    """VOC xml root -> ([n, 5] (x1, y1, x2, y2, class index), (height, width)); coordinates 0-based."""

    def __init__(self, class_to_ind: Optional[Dict[str, int]] = None, keep_difficult: bool = True):
        self.class_to_ind = class_to_ind or {name: i for i, name in enumerate(VOC_CLASSES)}
        self.keep_difficult = keep_difficult

    def __call__(self, target: ET.Element, source: str = "annotation") -> Tuple[np.ndarray, Tuple[int, int]]:
        rows = []
        for obj in target.iter("object"):
            difficult = flag(obj.find("difficult"))
            if difficult and not self.keep_difficult:
                continue
            name = obj.find("name").text.strip()
            if name not in self.class_to_ind:
                raise DataError(f"{source}: object class {name!r} is not among the dataset classes: fix the xml")
            box = obj.find("bndbox")
            coords = [int(float(box.find(tag).text)) - 1 for tag in ("xmin", "ymin", "xmax", "ymax")]
            rows.append(coords + [self.class_to_ind[name]])
        return np.array(rows, dtype=np.float64).reshape(-1, 5), stated_size(target)


def flag(node: Optional[ET.Element]) -> bool:
    """A 0/1 element such as <difficult>; absent or empty (`<difficult/>`) is 0."""
    return node is not None and (node.text or "0").strip() not in ("0", "0.0", "")


def stated_size(target: ET.Element) -> Tuple[int, int]:
    """(height, width) from <size>; (0, 0) when absent or zero (some labelling tools write 0 when they
    could not open the image): the caller then reads the image's own size."""
    size = target.find("size")
    try:
        return int(float(size.find("height").text)), int(float(size.find("width").text))
    except (AttributeError, TypeError, ValueError):
        return 0, 0


class VOCDetection(CacheDataset):
    """VOC items: (image, labels, (orig_h, orig_w), index); labels pre-scaled like COCODataset's."""

    def __init__(
        self,
        data_dir: str,
        image_sets: Sequence[Tuple[str, str]] = (("2007", "trainval"), ("2012", "trainval")),
        img_size: Sequence[int] = (416, 416),
        preproc=None,
        target_transform: Optional[AnnotationTransform] = None,
        dataset_name: str = "VOC0712",
        cache: bool = False,
        cache_type: str = "ram",
    ):
        self.root = data_dir
        self.image_set = image_sets
        self.img_size = tuple(img_size)
        self.preproc = preproc
        self.target_transform = target_transform or AnnotationTransform()
        self.name = dataset_name
        self._classes = VOC_CLASSES
        self.class_ids = list(range(len(VOC_CLASSES)))
        self.ids = self._read_ids(image_sets)
        self.num_imgs = len(self.ids)
        self.annotations = [self._load_annotation(i) for i in range(self.num_imgs)]
        path_filename = [os.path.relpath(self.image_path(i), data_dir) for i in range(self.num_imgs)]
        super().__init__(input_dimension=img_size, num_imgs=self.num_imgs, data_dir=data_dir,
                         cache_dir_name=f"cache_{dataset_name}", path_filename=path_filename, cache=cache,
                         cache_type=cache_type)

    def __len__(self) -> int:
        return self.num_imgs

    def _read_ids(self, image_sets) -> List[Tuple[str, str]]:
        ids = []
        for year, name in image_sets:
            year_root = os.path.join(self.root, f"VOC{year}")
            list_file = os.path.join(year_root, "ImageSets", "Main", f"{name}.txt")
            if not os.path.isfile(list_file):
                raise DataFileNotFoundError(f"image set list {list_file} not found: check data_dir and image_sets")
            with open(list_file, "r", encoding="utf-8") as f:
                ids += [(year_root, line.strip()) for line in f if line.strip()]
        return ids

    def annotation_path(self, index: int) -> str:
        year_root, image_id = self.ids[index]
        return os.path.join(year_root, "Annotations", f"{image_id}.xml")

    def image_path(self, index: int) -> str:
        """JPEGImages/<id>.jpg, or the first <id>.<image extension> there (VOC-style sets of PNGs or TIFFs)."""
        year_root, image_id = self.ids[index]
        candidates = [os.path.join(year_root, "JPEGImages", image_id + ext) for ext in IMAGE_EXTENSIONS]
        return next((path for path in candidates if os.path.isfile(path)), candidates[0])

    def _load_annotation(self, index: int):
        path = self.annotation_path(index)
        try:
            root = ET.parse(path).getroot()
        except FileNotFoundError:
            raise DataFileNotFoundError(
                f"annotation {path} not found: restore it or remove the id from the list"
            ) from None
        except ET.ParseError as err:
            raise DataError(f"annotation {path} is not valid XML ({err}): fix or re-export it") from None
        res, (height, width) = self.target_transform(root, path)
        if not (height and width):
            height, width = image_size(self.image_path(index))
        ratio = min(self.img_size[0] / height, self.img_size[1] / width)
        res[:, :4] *= ratio
        return res, (height, width), (int(height * ratio), int(width * ratio))

    def load_anno(self, index: int) -> np.ndarray:
        return self.annotations[index][0]

    def load_image(self, index: int) -> np.ndarray:
        path = self.image_path(index)
        read = read_image_file(path)
        if read.pixels is None:
            if not os.path.isfile(path):
                raise DataFileNotFoundError(f"image {path} is missing: restore it or remove its id from the list")
            raise DataError(f"image {path} {read.problem}: replace it")
        return read.pixels

    def pull_item(self, index: int):
        res, img_info, _ = self.annotations[index]
        return self.read_img(index), res.copy(), img_info, index
