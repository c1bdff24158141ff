"""The catalogue's completeness limit, and a warning when training shows the model its unlabelled craters.

A database lists craters only above some diameter; the smaller craters in a tile carry no label, and a
detector trained on such tiles learns them as background wherever it can see them. The tile maker
records the limit in the dataset's `info` block (`yolox.crater_catalog.catalog_tiles.completeness_info`);
the crater plan calls `completeness_warning` with the range of scales training applies to the tiles.
Crater counts grow steeply to small sizes (cumulative N(>D) ~ D^-2 is typical), so most unlabelled craters
sit just above the image's resolution.
"""
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["completeness_warning", "visible_unlabelled_fraction", "RESOLVED_PX", "VISIBLE_PX", "SIZE_SLOPE"]

RESOLVED_PX = 2.0    # craters narrower than this are not resolved in the tile at all
VISIBLE_PX = 4.0     # the smallest craters a detector sees (the tile maker's default --min-diameter-px)
SIZE_SLOPE = 2.0     # cumulative size-frequency slope: N(>D) ~ D^-SIZE_SLOPE
MOST = 0.5
SCALE_SAMPLES = 65


def visible_unlabelled_fraction(labelled_px: float, scale: float) -> float:
    """Share of the unlabelled craters (RESOLVED_PX..labelled_px in the tile) at VISIBLE_PX or more at `scale`."""
    low, high = RESOLVED_PX, labelled_px
    if high <= low:
        return 0.0
    seen_from = max(low, VISIBLE_PX / scale)
    if seen_from >= high:
        return 0.0
    b = SIZE_SLOPE
    return (seen_from ** -b - high ** -b) / (low ** -b - high ** -b)


def _safe_scale(labelled_px: float) -> float:
    """The scale at which exactly MOST of the unlabelled craters reach VISIBLE_PX (the closed form of the above)."""
    b = SIZE_SLOPE
    return VISIBLE_PX * ((1 - MOST) * RESOLVED_PX ** -b + MOST * labelled_px ** -b) ** (1.0 / b)


def completeness_warning(info: Mapping, train_scale_px_range: Sequence[float]) -> Optional[str]:
    """A warning when, over the training scales, most unlabelled craters are big enough for the model to see.

    `info` is the dataset's info block (from the tile maker); `train_scale_px_range` is (smallest, largest)
    factor by which training resizes tile pixels (input size / tile size times the scale jitter).
    None when the info block has no completeness record or the scales keep most unlabelled craters unseen.
    """
    catalogue_px, catalogue_km = info.get("catalogue_min_diameter_px"), info.get("catalogue_min_diameter_km")
    if catalogue_px is None or catalogue_km is None:
        return None
    labelled_px = max(float(catalogue_px), float(info.get("min_diameter_px", 0.0)))
    low, high = _scale_range(train_scale_px_range)
    fraction = float(np.mean([visible_unlabelled_fraction(labelled_px, s)
                              for s in np.linspace(low, high, SCALE_SAMPLES)]))
    if fraction <= MOST:
        return None
    labelled_km = float(catalogue_km) * labelled_px / float(catalogue_px)
    return (f"completeness: the tiles label craters down to {labelled_px:.1f} px ({labelled_km:.3g} km, the "
            f"catalogue's smallest or --min-diameter-px); at training scales {low:.2g}..{high:.2g}, "
            f"{fraction:.0%} of the smaller, unlabelled craters ({RESOLVED_PX:g}..{labelled_px:.1f} px, counted "
            f"as N(>D) ~ D^-{SIZE_SLOPE:g}) are {VISIBLE_PX:g} px or more, so the model learns them as background: "
            f"keep the training scale below {_safe_scale(labelled_px):.2g}, or label the tiles with a catalogue "
            "complete to smaller craters")


def _scale_range(scales: Sequence[float]) -> Tuple[float, float]:
    low, high = float(min(scales)), float(max(scales))
    if low <= 0:
        raise ValueError(f"training scales {tuple(scales)} must be positive")
    return low, high
