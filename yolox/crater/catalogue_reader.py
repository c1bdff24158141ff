"""Read a crater database (CSV or tab-separated) into centres and diameters, whatever its column names.

A row is placed either by longitude and latitude (degrees, 0..360 or -180..180) or by map coordinates
in the raster's CRS; its diameter is in kilometres or metres, as the column name says. Column names
are matched case-insensitively against the aliases below, first alias first, so the databases'
circle fit (`*_CIRC_IMG`) wins over their ellipse fit when a file has both:
Robbins & Hynek 2012 (Mars; 2012 release `LATITUDE_CIRCLE_IMAGE`..., later `LAT_CIRC_IMG`...),
Robbins 2019 (Moon, `LAT_CIRC_IMG`, `LON_CIRC_IMG`, `DIAM_CIRC_IMG`, ellipse `*_ELLI_*`),
Head et al. 2010 (Moon, `Lon`, `Lat`, `Diam_km`), and our own craters.csv (`lon`, `lat`, `diameter_m`).
"""
import csv
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from yolox.data.errors import DataError

__all__ = ["CatalogueError", "CraterTable", "read_catalogue", "describe", "accepted_names", "LON_ALIASES",
           "LAT_ALIASES", "DIAMETER_KM_ALIASES",
           "DIAMETER_M_ALIASES", "X_ALIASES", "Y_ALIASES"]

LON_ALIASES = ("lon", "longitude", "LON_CIRC_IMG", "LONGITUDE_CIRCLE_IMAGE", "LON_ELLI_IMG")
LAT_ALIASES = ("lat", "latitude", "LAT_CIRC_IMG", "LATITUDE_CIRCLE_IMAGE", "LAT_ELLI_IMG")
DIAMETER_KM_ALIASES = ("diameter_km", "diam_km", "d_km", "diameter", "diam", "DIAM_CIRC_IMG",
                       "DIAMETER_CIRCLE_IMAGE", "DIAM_ELLI_MAJOR_IMG")
DIAMETER_M_ALIASES = ("diameter_m", "diam_m", "d_m")
X_ALIASES = ("x", "x_map")
Y_ALIASES = ("y", "y_map")
DELIMITERS = ",\t;"


class CatalogueError(DataError):
    """A crater database we cannot read: missing file, no recognisable columns, no usable row."""


@dataclass(frozen=True)
class CraterTable:
    """Crater centres and diameters (metres); `geographic` says whether (a, b) is (lon, lat) or map (x, y)."""

    a: np.ndarray
    b: np.ndarray
    diameter_m: np.ndarray
    geographic: bool
    columns: Tuple[str, str, str]       # the file's own names of the columns read
    rows_read: int
    rows_skipped: int                   # empty, non-numeric or out-of-range values

    def __len__(self) -> int:
        return len(self.diameter_m)


def accepted_names() -> str:
    """The column names we recognise, for error messages."""
    return (f"longitude {'/'.join(LON_ALIASES)}; latitude {'/'.join(LAT_ALIASES)}; diameter in km "
            f"{'/'.join(DIAMETER_KM_ALIASES)} or in m {'/'.join(DIAMETER_M_ALIASES)}; or map coordinates "
            f"{'/'.join(X_ALIASES)} and {'/'.join(Y_ALIASES)} in the raster's CRS (any case)")


def _find(header: Sequence[str], aliases: Sequence[str]) -> Optional[int]:
    lowered = [name.strip().lower() for name in header]
    for alias in aliases:
        if alias.lower() in lowered:
            return lowered.index(alias.lower())
    return None


def _choose_columns(header: Sequence[str], path: str) -> Tuple[Tuple[int, int, int], bool, float]:
    """(indices of position a, b and diameter, geographic?, metres per diameter unit) or a CatalogueError."""
    diameter_km, diameter_m = _find(header, DIAMETER_KM_ALIASES), _find(header, DIAMETER_M_ALIASES)
    diameter, unit = (diameter_km, 1000.0) if diameter_km is not None else (diameter_m, 1.0)
    lon, lat = _find(header, LON_ALIASES), _find(header, LAT_ALIASES)
    x, y = _find(header, X_ALIASES), _find(header, Y_ALIASES)
    if diameter is not None and lon is not None and lat is not None:
        return (lon, lat, diameter), True, unit
    if diameter is not None and x is not None and y is not None:
        return (x, y, diameter), False, unit
    raise CatalogueError(f"crater catalogue {path}: no recognisable columns in its header "
                         f"({', '.join(header[:12])}{', ...' if len(header) > 12 else ''}): name them "
                         f"{accepted_names()}")


def _delimiter(first_line: str) -> str:
    """The separator of the header line: the candidate it contains most often."""
    return max(DELIMITERS, key=first_line.count)


def _parse(rows: List[List[str]], indices: Tuple[int, int, int]) -> Tuple[np.ndarray, int]:
    """[k, 3] float values of the rows whose three cells are finite numbers; the count of the others."""
    values = []
    for row in rows:
        try:
            triple = tuple(float(row[i]) for i in indices)
        except (ValueError, IndexError):
            continue
        if all(math.isfinite(v) for v in triple):
            values.append(triple)
    return np.asarray(values, np.float64).reshape(-1, 3), len(rows) - len(values)


def read_catalogue(path: str) -> CraterTable:
    """The craters of a CSV/TSV database; rows without usable values are counted and skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
            handle.seek(0)
            reader = csv.reader(handle, delimiter=_delimiter(first))
            header = next(reader, [])
            rows = list(reader)
    except FileNotFoundError:
        raise CatalogueError(f"crater catalogue {path} not found: check the path") from None
    except UnicodeDecodeError:
        raise CatalogueError(f"crater catalogue {path} is not a text (CSV) file: export the database as "
                             "CSV with a header line") from None
    indices, geographic, unit = _choose_columns(header, path)
    values, skipped = _parse(rows, indices)
    if geographic:
        in_range = ((values[:, 0] >= -180) & (values[:, 0] <= 360) & (np.abs(values[:, 1]) <= 90)
                    & (values[:, 2] > 0))
    else:
        in_range = values[:, 2] > 0
    skipped += int((~in_range).sum())
    values = values[in_range]
    if len(values) == 0:
        raise CatalogueError(f"crater catalogue {path}: none of its {len(rows)} rows holds usable numbers in "
                             f"columns {', '.join(header[i] for i in indices)}: check the file's contents")
    return CraterTable(a=values[:, 0], b=values[:, 1], diameter_m=values[:, 2] * unit, geographic=geographic,
                       columns=tuple(header[i].strip() for i in indices), rows_read=len(rows), rows_skipped=skipped)


def describe(table: CraterTable, path: str) -> str:
    """One log line: what was read from where."""
    kind = "lon/lat" if table.geographic else "map x/y"
    skipped = f", {table.rows_skipped} rows skipped (empty, non-numeric or out of range)" if table.rows_skipped else ""
    return (f"{path}: {len(table)} craters by {kind} from columns {', '.join(table.columns)} of "
            f"{table.rows_read} rows{skipped}")

