"""Chunks: the units of work that a run records as done, resumes by, and shares out among processes.

The tiles of every scale, row by row, are cut into runs of `chunk_tiles`; a chunk holds tiles of one
scale only. The plan depends only on the image size and the tiling settings, so every process and every
resumed run numbers the chunks alike. Shard I of N takes the chunks whose index is I modulo N: a
round-robin share, so that empty (no-data) regions spread over all shards.
"""
import os
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

from yolox.crater_catalog.tiling import Tile, plan_tiles
from yolox.utils.user_errors import UserError

__all__ = ["Chunk", "Shard", "plan_chunks", "parse_shard", "shard_for", "BadShard"]


class BadShard(UserError):
    """A --shard value that is not I/N with 0 <= I < N."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive tiles of one scale; `scale_index` counts the scales largest first."""

    index: int
    scale_index: int
    tiles: Tuple[Tile, ...]

    def window(self) -> Tuple[int, int, int, int]:
        """(x0, y0, width, height) in full-resolution pixels covering the chunk's tiles."""
        x0, y0 = min(t.x0 for t in self.tiles), min(t.y0 for t in self.tiles)
        x1, y1 = max(t.x0 + t.width for t in self.tiles), max(t.y0 + t.height for t in self.tiles)
        return x0, y0, x1 - x0, y1 - y0

    def describe(self) -> str:
        x0, y0, w, h = self.window()
        return f"chunk {self.index} (pixels x {x0}..{x0 + w}, y {y0}..{y0 + h})"


@dataclass(frozen=True)
class Shard:
    """This process's share: chunks whose index is `index` modulo `count`."""

    index: int = 0
    count: int = 1

    def owns(self, chunk: Chunk) -> bool:
        return chunk.index % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`I/N` (0-based I, as SLURM_ARRAY_TASK_ID counts from 0) to a Shard."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise BadShard(f"--shard {text!r}: give I/N, e.g. 0/4 for the first of four processes") from None
    if not 0 <= index < count:
        raise BadShard(f"--shard {text!r}: I must lie in 0..N-1 (shards count from 0, like SLURM_ARRAY_TASK_ID)")
    return Shard(index, count)


def shard_for(text: Optional[str], environ: Mapping[str, str] = os.environ) -> Shard:
    """`--shard I/N` when given; in a process of a torchrun launch (RANK, WORLD_SIZE), its rank of the world;
    else the whole image."""
    if text:
        return parse_shard(text)
    world = int(environ.get("WORLD_SIZE", "1"))
    return Shard(int(environ.get("RANK", "0")), world) if world > 1 else Shard(0, 1)


def plan_chunks(width: int, height: int, tile: int, overlap: int, scales: Sequence[float],
                chunk_tiles: int) -> List[Chunk]:
    """Every chunk of the image, numbered from 0: scales largest first, tiles row by row."""
    if chunk_tiles < 1:
        raise ValueError(f"chunk size {chunk_tiles} must be at least one tile")
    chunks: List[Chunk] = []
    for scale_index, scale in enumerate(scales):
        tiles = plan_tiles(width, height, tile, overlap, scale)
        for start in range(0, len(tiles), chunk_tiles):
            chunks.append(Chunk(len(chunks), scale_index, tuple(tiles[start:start + chunk_tiles])))
    return chunks
