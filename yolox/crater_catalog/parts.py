"""The record of finished chunks beside a catalogue: what lets a killed run resume and shards be merged.

    <out>/parts/manifest.json        the raster, its size, the model, the tiling: what the records belong to
    <out>/parts/chunk_000012.npz     craters of one finished chunk (x, y, diameter, score, fraction; float64)
    <out>/parts/chunk_000013.failed.json   a chunk that could not be read: its window and the error

Every file is written to a temporary name, flushed to disk and renamed, so a kill at any moment leaves
either the whole record or none. A run whose manifest differs from the one found is refused (use
--restart), so no job continues another's work.
"""
import glob
import json
import os
import shutil
from typing import Callable, Dict, List, Optional

import numpy as np

from yolox.crater_catalog.chunks import Chunk
from yolox.crater_catalog.merge import Craters
from yolox.utils.user_errors import UserError

__all__ = ["PartsStore", "ChunkResult", "RunMismatch", "PARTS_DIR", "MANIFEST", "atomic_write", "stores_in"]

PARTS_DIR = "parts"
MANIFEST = "manifest.json"


class RunMismatch(UserError):
    """Chunk records of a different job (raster, model or tiling) are in the output folder."""


def atomic_write(path: str, write: Callable[[object], None], binary: bool = False) -> str:
    """Write through `<path>.tmp<pid>`, flush and fsync, then rename over `path`."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb" if binary else "w") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


class ChunkResult:
    """What one chunk gave: its craters, the tiles run through the model and those skipped as no-data."""

    def __init__(self, craters: Craters, tiles_run: int, tiles_nodata: int) -> None:
        self.craters = craters
        self.tiles_run = tiles_run
        self.tiles_nodata = tiles_nodata


class PartsStore:
    """The parts folder of one image's run (see the module docstring)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    @classmethod
    def open(cls, out_dir: str, manifest: Dict, restart: bool = False) -> "PartsStore":
        """The store in `out_dir`, created with `manifest`, emptied first with `restart`; refuses another job's."""
        store = cls(os.path.join(out_dir, PARTS_DIR))
        if restart and os.path.isdir(store.folder):
            shutil.rmtree(store.folder)
        os.makedirs(store.folder, exist_ok=True)
        found = store.manifest()
        if found is None:
            atomic_write(store.path(MANIFEST), lambda handle: json.dump(manifest, handle, indent=1, sort_keys=True))
        elif found != manifest:
            differ = sorted(key for key in set(found) | set(manifest) if found.get(key) != manifest.get(key))
            raise RunMismatch(f"{store.folder} holds chunks of another job (differs in {', '.join(differ)}): "
                              "run with --restart to start over there, or give another --out")
        return store

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def manifest(self) -> Optional[Dict]:
        """The manifest found in the folder, or None."""
        if not os.path.exists(self.path(MANIFEST)):
            return None
        with open(self.path(MANIFEST)) as handle:
            return json.load(handle)

    @staticmethod
    def _name(index: int, kind: str) -> str:
        return f"chunk_{index:06d}.{kind}"

    def done(self) -> set:
        """Indices of the chunks with a crater record."""
        return {int(os.path.basename(p)[6:12]) for p in glob.glob(self.path("chunk_*.npz"))}

    def failures(self) -> Dict[int, Dict]:
        """Chunk index -> failure record (window, error) of the chunks that could not be read."""
        found = {}
        for name in glob.glob(self.path("chunk_*.failed.json")):
            with open(name) as handle:
                found[int(os.path.basename(name)[6:12])] = json.load(handle)
        return found

    def finish(self, chunk: Chunk, result: ChunkResult) -> None:
        """Record a finished chunk (and drop an earlier failure record of it)."""
        def write(handle) -> None:
            np.savez(handle, craters=result.craters.table(), tiles=np.array([result.tiles_run, result.tiles_nodata]))

        atomic_write(self.path(self._name(chunk.index, "npz")), write, binary=True)
        failed = self.path(self._name(chunk.index, "failed.json"))
        if os.path.exists(failed):
            os.remove(failed)

    def fail(self, chunk: Chunk, error: str) -> None:
        """Record that a chunk could not be read (a later run tries it again)."""
        x0, y0, w, h = chunk.window()
        record = {"chunk": chunk.index, "window": {"x0": x0, "y0": y0, "width": w, "height": h}, "error": error}
        atomic_write(self.path(self._name(chunk.index, "failed.json")), lambda handle: json.dump(record, handle))

    def load(self, index: int) -> ChunkResult:
        with np.load(self.path(self._name(index, "npz"))) as record:
            tiles = record["tiles"]
            return ChunkResult(Craters.from_table(record["craters"]), int(tiles[0]), int(tiles[1]))


def stores_in(folders: List[str]) -> List[PartsStore]:
    """The parts stores in `folders`: each folder is a run's output folder, its parts folder, or holds one
    output sub-folder per image."""
    stores = []
    for folder in folders:
        if os.path.exists(os.path.join(folder, MANIFEST)):
            stores.append(PartsStore(folder))
        elif os.path.exists(os.path.join(folder, PARTS_DIR, MANIFEST)):
            stores.append(PartsStore(os.path.join(folder, PARTS_DIR)))
        else:
            stores.extend(PartsStore(os.path.dirname(p))
                          for p in sorted(glob.glob(os.path.join(folder, "*", PARTS_DIR, MANIFEST))))
    return stores
