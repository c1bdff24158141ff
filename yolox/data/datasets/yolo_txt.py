"""YOLO txt datasets (Roboflow / Ultralytics export) read as COCO-format dicts.

Layout:
    <root>/data.yaml            train:/val:/test: image folders, names: (list, inline list or
                                 `0: name` mapping), optional nc:, optional path: (base folder)
    <root>/train/images/*.jpg   images
    <root>/train/labels/*.txt   one line per box: `class cx cy w h`, normalised to [0, 1];
                                 polygon lines (`class x1 y1 x2 y2 ...`) become their bounding box.
An image without a label file is a background image. Folder paths in data.yaml are tried
relative to `path:`, to the yaml's folder, and without a leading "../" (Roboflow writes
"../train/images" relative to a parent folder); with no entry, <root>/<split>/images is used.
"""
import ast
import os
from typing import Dict, List, Optional, Tuple

from ..errors import DataError, DataFileNotFoundError
from .image_folder import add_box, add_image, empty_coco, list_images, listed_image_size

YAML_NAMES = ("data.yaml", "data.yml")
TEXT_ENCODING = "utf-8-sig"  # UTF-8, without the byte-order mark Windows editors put before the first line
SPLIT_KEYS = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}
SPLIT_FOLDERS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}


def find_yaml(root: str) -> Optional[str]:
    for name in YAML_NAMES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    return None


def _scalar(text: str):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _strip_comment(line: str) -> str:
    quote = None
    for pos, char in enumerate(line):
        if char in "'\"":
            quote = None if quote == char else (quote or char)
        elif char == "#" and quote is None and (pos == 0 or line[pos - 1].isspace()):
            return line[:pos]
    return line


def parse_data_yaml(path: str) -> Dict[str, object]:
    """The flat keys of a data.yaml: scalars, inline lists, block lists and `i: name` mappings."""
    result: Dict[str, object] = {}
    current_key = None
    with open(path, "r", encoding=TEXT_ENCODING) as f:
        for line_no, raw in enumerate(f, start=1):
            line = _strip_comment(raw).rstrip()
            if not line.strip():
                continue
            if line[0].isspace() or line.startswith("-"):
                item = line.strip()
                if current_key is None:
                    raise DataError(f"{path}:{line_no}: indented line outside a key: fix the YAML")
                if item.startswith("-"):
                    result.setdefault(current_key, [])
                    result[current_key].append(_scalar(item[1:]))
                elif ":" in item:
                    index, value = item.split(":", 1)
                    result.setdefault(current_key, {})
                    result[current_key][_scalar(index)] = _scalar(value)
                continue
            if ":" not in line:
                raise DataError(f"{path}:{line_no}: expected 'key: value', got {line.strip()!r}: fix the YAML")
            key, value = line.split(":", 1)
            current_key = key.strip()
            if value.strip():
                result[current_key] = _parse_value(value.strip())
    return result


def _parse_value(text: str):
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        try:
            return list(ast.literal_eval(f"[{inner}]"))
        except (ValueError, SyntaxError):
            return [_scalar(part) for part in inner.split(",") if part.strip()]
    return _scalar(text)


def class_names(config: Dict[str, object], yaml_path: str) -> List[str]:
    names = config.get("names")
    count = config.get("nc")
    if isinstance(names, dict):
        names = [str(names[k]) for k in sorted(names)]
    if names is None:
        if count is None:
            raise DataError(f"{yaml_path} has neither names: nor nc:: add `names: [...]` listing the classes")
        names = [str(i) for i in range(int(count))]
    names = [str(n) for n in names]
    if count is not None and int(count) != len(names):
        raise DataError(f"{yaml_path}: nc: {count} but names: lists {len(names)} classes: make them agree")
    return names


def image_folder(root: str, config: Dict[str, object], split: str, yaml_path: str) -> str:
    """The image folder of `split` ('train', 'val' or 'test')."""
    if split not in SPLIT_KEYS:
        raise DataError(f"unknown split {split!r}: use 'train', 'val' or 'test'")
    base = os.path.join(root, str(config.get("path", "")))
    tried = []
    for key in SPLIT_KEYS[split]:
        entry = config.get(key)
        if isinstance(entry, str):
            stripped = entry[3:] if entry.startswith("../") else entry
            tried += [os.path.join(base, entry), os.path.join(root, entry), os.path.join(root, stripped)]
    tried += [os.path.join(root, folder, "images") for folder in SPLIT_FOLDERS[split]]
    for candidate in tried:
        if os.path.isdir(candidate):
            return os.path.normpath(candidate)
    raise DataFileNotFoundError(
        f"{yaml_path}: no image folder for split '{split}' (tried {', '.join(dict.fromkeys(tried))}): "
        f"set `{SPLIT_KEYS[split][0]}: <folder of images>` in the yaml"
    )


def labels_folder(images_dir: str) -> str:
    parent, leaf = os.path.split(images_dir)
    return os.path.join(parent, "labels") if leaf == "images" else images_dir


def parse_label_line(fields: List[str], where: str) -> Tuple[int, float, float, float, float]:
    """(class, cx, cy, w, h) normalised, from a box line or the bounding box of a polygon line."""
    polygon = len(fields) >= 7 and len(fields) % 2 == 1
    if len(fields) != 5 and not polygon:
        raise DataError(f"{where}: expected 'class cx cy w h' (5 numbers), got {len(fields)} values: fix the line")
    try:
        class_value = float(fields[0])
        values = [float(v) for v in fields[1:]]
    except ValueError:
        raise DataError(f"{where}: non-numeric value in {' '.join(fields)!r}: fix the line") from None
    if not class_value.is_integer():
        raise DataError(f"{where}: class {fields[0]!r} is not a whole number: fix the line")
    class_id = int(class_value)  # one outside names: is dropped and named by the dataset check
    if polygon:
        xs, ys = values[0::2], values[1::2]
        return class_id, (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)
    return (class_id, *values)


def load_yolo_split(root: str, split: str) -> Tuple[dict, str]:
    """(COCO-format dict, image folder) for one split of a YOLO txt dataset."""
    yaml_path = find_yaml(root)
    if yaml_path is None:
        raise DataFileNotFoundError(f"{root} has no data.yaml: add one with `names: [...]` and the split folders")
    config = parse_data_yaml(yaml_path)
    names = class_names(config, yaml_path)
    images_dir = image_folder(root, config, split, yaml_path)
    labels_dir = labels_folder(images_dir)
    data = empty_coco(names)
    for file_name in list_images(images_dir):
        height, width = listed_image_size(os.path.join(images_dir, file_name))
        image_id = add_image(data, file_name, height, width)
        label_path = os.path.join(labels_dir, os.path.splitext(file_name)[0] + ".txt")
        if not os.path.isfile(label_path):
            continue
        with open(label_path, "r", encoding=TEXT_ENCODING) as f:
            for line_no, line in enumerate(f, start=1):
                fields = line.split()
                if not fields:
                    continue
                class_id, cx, cy, w, h = parse_label_line(fields, f"{label_path}:{line_no}")
                add_box(data, image_id, class_id, (cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
    return data, images_dir


def yolo_splits(root: str) -> List[str]:
    """The splits of a YOLO txt dataset whose image folder exists."""
    yaml_path = find_yaml(root)
    config = parse_data_yaml(yaml_path)
    found = []
    for split in SPLIT_KEYS:
        try:
            image_folder(root, config, split, yaml_path)
            found.append(split)
        except DataFileNotFoundError:
            pass
    return found


def yolo_num_classes(root: str) -> int:
    yaml_path = find_yaml(root)
    return len(class_names(parse_data_yaml(yaml_path), yaml_path))
