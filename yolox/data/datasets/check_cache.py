"""Where the dataset check keeps its image verdicts: beside the annotations, else in the user cache dir
($XDG_CACHE_HOME or ~/.cache, under yolox/dataset_check/) when that folder is read-only."""
import hashlib
import json
import os
import tempfile
from typing import Dict

from loguru import logger

__all__ = ["CACHE_VERSION", "cache_file_for", "read_cache", "user_cache_file", "write_cache"]

# 2: verdicts hold the content kind, and a file's type is decided by content (version 1 called PNGs
# named .jpg corrupt; those verdicts must not be reused)
CACHE_VERSION = 2
CACHE_SUFFIX = ".yolox_check"


def cache_file_for(annotation_file: str, split: str) -> str:
    """Where the check of `split` described by `annotation_file` is cached (beside that file)."""
    return f"{annotation_file}.{split}{CACHE_SUFFIX}"


def user_cache_file(beside: str) -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha1(os.path.abspath(beside).encode("utf-8")).hexdigest()[:16]
    return os.path.join(root, "yolox", "dataset_check", f"{digest}_{os.path.basename(beside)}")


def read_cache(cache_file: str, images_dir: str) -> Dict[str, dict]:
    """Cached image verdicts for `images_dir`, from beside the annotations or the user cache dir."""
    for path in (cache_file, user_cache_file(cache_file)):
        try:
            with open(path, "r", encoding="utf-8") as f:
                content = json.load(f)
        except (OSError, ValueError):
            continue
        if content.get("version") == CACHE_VERSION and content.get("images_dir") == os.path.abspath(images_dir):
            return content.get("images", {})
    return {}


def write_cache(cache_file: str, images_dir: str, verdicts: Dict[str, dict], result: dict) -> None:
    """Write atomically beside the annotations, or in the user cache dir when that folder is read-only."""
    content = {"version": CACHE_VERSION, "images_dir": os.path.abspath(images_dir), "images": verdicts,
               "result": result}
    for path in (cache_file, user_cache_file(cache_file)):
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            handle, partial = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".partial")
        except OSError:
            continue
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as f:
                json.dump(content, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
            return
        except OSError:
            if os.path.exists(partial):
                os.remove(partial)
    logger.warning(f"dataset check: could not cache the result at {cache_file} nor {user_cache_file(cache_file)}; "
                   "the next run reads every image again")
