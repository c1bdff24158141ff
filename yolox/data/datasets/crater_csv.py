"""Crater catalogue CSVs read as COCO-format dicts.

Layout (one CSV per split, each row one crater):
    <root>/train.csv      header row, then `image,x,y,diameter[,class]`
    <root>/train/         the split's images (or <root>/train/images/)
    <root>/val.csv, <root>/val/  (or valid.csv, valid/), <root>/test.csv, <root>/test/
Separated by commas, semicolons (then a decimal comma is read too) or tabs, as the header row shows;
a UTF-8 byte-order mark, quoted cells and CRLF line ends are fine.
Columns (case-insensitive, any order, extra columns ignored):
    image     file name inside the split's image folder (also: file, file_name, filename, image_name)
    x, y      crater centre in pixels (also: cx/cy, x_center/y_center, x_px/y_px)
    diameter  in pixels (also: diam, d, diameter_px)
    class     optional class name (also: label, category, class_name); without it every crater
              is class "crater".
A crater becomes the square box centred on it with side = diameter. Classes are ordered by
<root>/classes.txt (one name per line) when present, else sorted over all split CSVs, so every
split maps names to the same ids. Images of the folder with no row are background images.
"""
import csv
import os
from typing import Dict, List, Optional, Tuple

from ..errors import DataError, DataFileNotFoundError
from .image_folder import add_box, add_image, empty_coco, list_images, listed_image_size

COLUMN_ALIASES = {
    "image": ("image", "file", "file_name", "filename", "image_name", "img"),
    "x": ("x", "cx", "x_center", "center_x", "x_px", "x_pix"),
    "y": ("y", "cy", "y_center", "center_y", "y_px", "y_pix"),
    "diameter": ("diameter", "diam", "d", "diameter_px", "diameter_pix"),
    "class": ("class", "label", "category", "class_name"),
}
REQUIRED_COLUMNS = ("image", "x", "y", "diameter")
SPLIT_STEMS = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}
DEFAULT_CLASS = "crater"
DELIMITERS = (",", ";", "\t")


def split_csv(root: str, split: str) -> Optional[str]:
    if split not in SPLIT_STEMS:
        raise DataError(f"unknown split {split!r}: use 'train', 'val' or 'test'")
    for stem in SPLIT_STEMS[split]:
        path = os.path.join(root, stem + ".csv")
        if os.path.isfile(path):
            return path
    return None


def csv_splits(root: str) -> List[str]:
    return [split for split in SPLIT_STEMS if split_csv(root, split)]


def _columns(header: List[str], path: str) -> Dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    columns = {}
    for column, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                columns[column] = lowered.index(alias)
                break
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"{path}: header {header} lacks column(s) {', '.join(missing)}: "
            "the first row must name image, x, y, diameter (and optionally class)"
        )
    return columns


def number(cell: str, delimiter: str) -> float:
    """A number cell; after a ';' delimiter (European spreadsheets) a decimal comma is read as a point."""
    return float(cell.replace(",", ".") if delimiter == ";" else cell)


def read_rows(path: str) -> List[Tuple[int, str, float, float, float, str]]:
    """(line number, image, x, y, diameter, class name) for every data row of a crater CSV."""
    rows = []
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        first_line = f.readline()
        delimiter = max(DELIMITERS, key=first_line.count)
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty: add a header row `image,x,y,diameter[,class]` and one row per crater")
        columns = _columns(header, path)
        for line_no, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            # a row may stop before trailing optional cells (an empty class column at the end)
            cells = {name: row[index].strip() for name, index in columns.items() if index < len(row)}
            try:
                x, y, diameter = (number(cells[k], delimiter) for k in ("x", "y", "diameter"))
                image = cells["image"]
            except (KeyError, ValueError):
                raise DataError(
                    f"{path}:{line_no}: row {row} needs numbers in x, y and diameter: fix or delete the row"
                ) from None
            rows.append((line_no, image, x, y, diameter, cells.get("class") or DEFAULT_CLASS))
    return rows


def csv_class_names(root: str) -> List[str]:
    """Class names in id order: classes.txt if present, else sorted over every split's CSV."""
    classes_file = os.path.join(root, "classes.txt")
    if os.path.isfile(classes_file):
        with open(classes_file, "r", encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    names = {row[5] for split in csv_splits(root) for row in read_rows(split_csv(root, split))}
    return sorted(names) or [DEFAULT_CLASS]


def split_image_folder(root: str, csv_path: str) -> str:
    stem = os.path.splitext(os.path.basename(csv_path))[0]
    for candidate in (os.path.join(root, stem, "images"), os.path.join(root, stem)):
        if os.path.isdir(candidate):
            return candidate
    raise DataFileNotFoundError(
        f"{csv_path}: image folder {os.path.join(root, stem)} not found: put the split's images there"
    )


def load_csv_split(root: str, split: str) -> Tuple[dict, str]:
    """(COCO-format dict, image folder) for one split of a crater CSV dataset."""
    path = split_csv(root, split)
    if path is None:
        stems = " or ".join(s + ".csv" for s in SPLIT_STEMS[split])
        raise DataFileNotFoundError(f"{root} has no {stems}: add the split's crater CSV")
    images_dir = split_image_folder(root, path)
    names = csv_class_names(root)
    class_index = {name: i for i, name in enumerate(names)}
    data = empty_coco(names)
    image_ids = {}
    for file_name in list_images(images_dir):
        height, width = listed_image_size(os.path.join(images_dir, file_name))
        image_ids[file_name] = add_image(data, file_name, height, width)
    for line_no, image, x, y, diameter, name in read_rows(path):
        if image not in image_ids:  # not listed (a subfolder, an unusual extension) or missing: the check decides
            image_ids[image] = add_image(data, image, *listed_image_size(os.path.join(images_dir, image)))
        if name not in class_index:
            raise DataError(f"{path}:{line_no}: class {name!r} is not listed in classes.txt: add it there")
        add_box(data, image_ids[image], class_index[name], x - diameter / 2, y - diameter / 2, diameter, diameter)
    return data, images_dir
