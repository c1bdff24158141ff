"""Compare a detected crater catalogue with a reference one: one-to-one matches, P/R/F1, diameter error.

A detected and a reference crater match when their centres are closer than `max_dist_frac` times the
reference diameter and their diameters differ by less than a factor `max_diam_ratio`. Candidate pairs
are taken closest first (distance relative to the reference diameter), each crater in at most one pair.
Precision in a diameter bin counts the detections of that size, recall the reference craters of it.

On the body (`on_the_body`): a craters.csv detected on a georeferenced raster against a crater database in
longitude and latitude (read by its own column names, either longitude convention, or map coordinates in the
raster's CRS), keeping the database's craters centred on the raster. Both go to kilometres in an azimuthal
equidistant plane centred on the raster, on the raster's body, so distances and diameters compare the same in
any projection of the mosaic. Needs rasterio and pyproj (the geo extra).
"""
import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from yolox.crater_catalog.catalogue_reader import CatalogueError, MissingColumns, read_catalogue
from yolox.crater_catalog.merge import Craters
from yolox.crater_catalog.sources import open_georeferenced_raster

__all__ = ["MatchRule", "match_craters", "compare_catalogues", "format_report", "on_the_body", "DETECTED_COLUMNS"]

DETECTED_COLUMNS = ("lon", "lat", "diameter_m")


@dataclass(frozen=True)
class MatchRule:
    max_dist_frac: float = 0.5
    max_diam_ratio: float = 1.5

    def describe(self) -> str:
        return (f"match: centre distance < {self.max_dist_frac:g} x reference diameter and diameter ratio "
                f"< {self.max_diam_ratio:g}, one to one, closest first")


def match_craters(detected: Craters, reference: Craters, rule: MatchRule = MatchRule()
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (detected, reference) of the matched pairs."""
    order = np.argsort(reference.x, kind="stable")
    ref_x = reference.x[order]
    pairs: List[Tuple[float, int, int]] = []
    for i in range(len(detected)):
        # a reference partner is at most max_diam_ratio times larger: bound its centre's reach in x
        reach = rule.max_dist_frac * detected.diameter[i] * rule.max_diam_ratio
        lo = np.searchsorted(ref_x, detected.x[i] - reach, side="left")
        hi = np.searchsorted(ref_x, detected.x[i] + reach, side="right")
        near = order[lo:hi]
        ref_d = reference.diameter[near]
        dist = np.hypot(reference.x[near] - detected.x[i], reference.y[near] - detected.y[i]) / np.maximum(ref_d, 1e-9)
        ratio = np.maximum(ref_d, detected.diameter[i]) / np.maximum(np.minimum(ref_d, detected.diameter[i]), 1e-9)
        ok = (dist < rule.max_dist_frac) & (ratio < rule.max_diam_ratio)
        pairs.extend(zip(dist[ok].tolist(), [i] * int(ok.sum()), near[ok].tolist()))
    pairs.sort()
    used_det, used_ref = np.zeros(len(detected), bool), np.zeros(len(reference), bool)
    det_idx, ref_idx = [], []
    for _, i, j in pairs:
        if not used_det[i] and not used_ref[j]:
            used_det[i] = used_ref[j] = True
            det_idx.append(i)
            ref_idx.append(j)
    return np.asarray(det_idx, int), np.asarray(ref_idx, int)


def _prf(matched_det: int, detected: int, matched_ref: int, reference: int) -> Dict[str, Optional[float]]:
    precision = matched_det / detected if detected else None
    recall = matched_ref / reference if reference else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    return {"detected": detected, "reference": reference, "matched_detected": matched_det,
            "matched_reference": matched_ref,
            "precision": precision, "recall": recall, "f1": f1}


def default_bins(reference: Craters) -> List[float]:
    """Doubling diameter bin edges covering the reference craters (powers of two)."""
    if len(reference) == 0:
        return [0.0, math.inf]
    low = 2.0 ** math.floor(math.log2(max(reference.diameter.min(), 1e-3)))
    high = 2.0 ** math.ceil(math.log2(reference.diameter.max() * 1.0001))
    edges = [low]
    while edges[-1] < high:
        edges.append(edges[-1] * 2)
    return edges


def compare_catalogues(detected: Craters, reference: Craters, rule: MatchRule = MatchRule(),
                       bins: Optional[Sequence[float]] = None) -> Dict:
    """P/R/F1 overall and by diameter bin, and the matches' diameter and centre errors (JSON-ready)."""
    det_idx, ref_idx = match_craters(detected, reference, rule)
    edges = list(bins) if bins is not None else default_bins(reference)
    det_matched = np.zeros(len(detected), bool)
    det_matched[det_idx] = True
    ref_matched = np.zeros(len(reference), bool)
    ref_matched[ref_idx] = True
    by_bin = []
    for low, high in zip(edges[:-1], edges[1:]):
        in_det = (detected.diameter >= low) & (detected.diameter < high)
        in_ref = (reference.diameter >= low) & (reference.diameter < high)
        by_bin.append({"bin": [low, high], **_prf(int(det_matched[in_det].sum()), int(in_det.sum()),
                                                  int(ref_matched[in_ref].sum()), int(in_ref.sum()))})
    errors = {}
    if len(det_idx):
        ref_d = reference.diameter[ref_idx]
        relative = (detected.diameter[det_idx] - ref_d) / ref_d
        offset = np.hypot(detected.x[det_idx] - reference.x[ref_idx], detected.y[det_idx] - reference.y[ref_idx])
        errors = {"diameter_rel_median": float(np.median(relative)),
                  "diameter_rel_mean_abs": float(np.mean(np.abs(relative))),
                  "diameter_abs_median": float(np.median(np.abs(detected.diameter[det_idx] - ref_d))),
                  "centre_offset_rel_median": float(np.median(offset / ref_d))}
    return {"rule": {**asdict(rule), "text": rule.describe()},
            "overall": _prf(len(det_idx), len(detected), len(ref_idx), len(reference)),
            "by_diameter": by_bin, "matched_errors": errors}


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_report(report: Dict) -> str:
    """The comparison as text: the rule, a table by diameter bin with the overall row, the errors."""
    from tabulate import tabulate

    rows = [[f"{b['bin'][0]:g}-{b['bin'][1]:g}", b["reference"], b["detected"], b["matched_reference"],
             b["matched_detected"], _fmt(b["precision"]),
             _fmt(b["recall"]), _fmt(b["f1"])] for b in report["by_diameter"]]
    o = report["overall"]
    rows.append(["all", o["reference"], o["detected"], o["matched_reference"],
                 o["matched_detected"], _fmt(o["precision"]), _fmt(o["recall"]),
                 _fmt(o["f1"])])
    table = tabulate(rows, headers=["diameter", "reference", "detected", "found (ref)", "true (det)", "precision", "recall", "F1"])
    errors = ", ".join(f"{k} {v:.3f}" for k, v in report["matched_errors"].items()) or "no matches"
    return f"{report['rule']['text']}\n{table}\nmatched craters: {errors}"


def _read_detected(path: str) -> Craters:
    """lon, lat, diameter_m and score of a craters.csv written for a georeferenced image."""
    try:
        return read_catalogue(path, DETECTED_COLUMNS).craters()
    except MissingColumns as error:
        raise CatalogueError(f"{path} has no column(s) {', '.join(error.missing)}: compare on the body needs the "
                             "craters.csv of a georeferenced image (detect_craters.py on the GeoTIFF)") from None


def _in_km(plane, lon: np.ndarray, lat: np.ndarray, diameter_m: np.ndarray, score: np.ndarray) -> Craters:
    x, y = plane.transform(lon, lat)
    return Craters(np.asarray(x) / 1000.0, np.asarray(y) / 1000.0, diameter_m / 1000.0, score)


def on_the_body(detected_csv: str, database: str, raster: str) -> Tuple[Craters, Craters, Dict[str, int]]:
    """(detected, the database's craters centred on `raster`), both in km on the body, and the counts."""
    with open_georeferenced_raster(raster) as source:
        geo, width, height = source.geo, source.width, source.height
    table = read_catalogue(database)
    lon, lat = table.lonlat(geo)
    cx, cy = geo.lonlat_to_pixels(lon, lat)
    inside = np.isfinite(cx) & np.isfinite(cy) & (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    centre_lon, centre_lat = (float(v[0]) for v in geo.to_lonlat(*geo.to_map(np.array([width / 2]),
                                                                             np.array([height / 2]))))
    plane = geo.local_plane(centre_lon, centre_lat)
    reference = _in_km(plane, lon[inside], lat[inside], table.diameter[inside], table.score[inside])
    found = _read_detected(detected_csv)
    detected = _in_km(plane, found.x, found.y, found.diameter, found.score)
    counts = {"reference craters centred on the raster": int(inside.sum()),
              "reference craters elsewhere (not compared)": int((~inside).sum()),
              "reference rows skipped (empty or out of range)": table.rows_skipped}
    return detected, reference, counts
