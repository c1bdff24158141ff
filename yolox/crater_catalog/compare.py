"""Compare a detected crater catalogue with a reference one: one-to-one matches, P/R/F1, diameter error.

A detected and a reference crater match when their centres are closer than `max_dist_frac` times the
reference diameter and their diameters differ by less than a factor `max_diam_ratio`. Candidate pairs
are taken closest first (distance relative to the reference diameter), each crater in at most one pair.
Precision in a diameter bin counts the detections of that size, recall the reference craters of it.
"""
import csv
import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from yolox.crater_catalog.merge import Craters

__all__ = ["MatchRule", "read_catalogue", "match_craters", "compare_catalogues", "format_report"]


@dataclass(frozen=True)
class MatchRule:
    max_dist_frac: float = 0.5
    max_diam_ratio: float = 1.5

    def describe(self) -> str:
        return (f"match: centre distance < {self.max_dist_frac:g} x reference diameter and diameter ratio "
                f"< {self.max_diam_ratio:g}, one to one, closest first")


def read_catalogue(path: str, columns: Tuple[str, str, str] = ("x_px", "y_px", "diameter_px")) -> Craters:
    """Craters of a CSV with a header naming the x, y and diameter columns (score optional)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:  # Excel's "CSV UTF-8" starts with a BOM
        reader = csv.DictReader(handle)
        missing = [name for name in columns if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing} (header: {reader.fieldnames}); "
                             f"name the columns with --columns X,Y,DIAMETER")
        rows = [(float(r[columns[0]]), float(r[columns[1]]), float(r[columns[2]]), float(r.get("score") or 1.0))
                for r in reader]
    table = np.asarray(rows, np.float64).reshape(-1, 4)
    return Craters(table[:, 0], table[:, 1], table[:, 2], table[:, 3])


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
