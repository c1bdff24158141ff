"""Read a crater catalogue (CSV or tab-separated): a crater database under its own column names, or any
catalogue whose three columns (x, y, diameter) the caller names. One reader, one table, one rule for rows.

Without names, a row is placed either by longitude and latitude (degrees, 0..360 or -180..180) or by map
coordinates in the raster's CRS; its diameter is in kilometres or metres, as the column name says. Column
names are matched case-insensitively against the aliases below, first alias first, so the databases'
circle fit (`*_CIRC_IMG`) wins over their ellipse fit when a file has both:
Robbins & Hynek 2012 (Mars; 2012 release `LATITUDE_CIRCLE_IMAGE`..., later `LAT_CIRC_IMG`...),
Robbins 2019 (Moon, `LAT_CIRC_IMG`, `LON_CIRC_IMG`, `DIAM_CIRC_IMG`, ellipse `*_ELLI_*`),
Head et al. 2010 (Moon, `Lon`, `Lat`, `Diam_km`), and our own craters.csv (`lon`, `lat`, `diameter_m`).
With names (`columns`), the values are taken as they stand (pixels, metres, whatever the file holds).
Either way a `score` column is read when there is one, and rows with an empty, non-numeric or
out-of-range value are counted and skipped.
"""
import csv
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from yolox.crater_catalog.geo import GeoReference
from yolox.crater_catalog.merge import Craters
from yolox.data.errors import DataError

__all__ = ["CatalogueError", "MissingColumns", "CraterTable", "read_catalogue", "describe", "accepted_names",
           "LON_ALIASES", "LAT_ALIASES", "DIAMETER_KM_ALIASES", "DIAMETER_M_ALIASES", "X_ALIASES", "Y_ALIASES",
           "LONLAT", "MAP", "AS_NAMED"]

LON_ALIASES = ("lon", "longitude", "LON_CIRC_IMG", "LONGITUDE_CIRCLE_IMAGE", "LON_ELLI_IMG")
LAT_ALIASES = ("lat", "latitude", "LAT_CIRC_IMG", "LATITUDE_CIRCLE_IMAGE", "LAT_ELLI_IMG")
DIAMETER_KM_ALIASES = ("diameter_km", "diam_km", "d_km", "diameter", "diam", "DIAM_CIRC_IMG",
                       "DIAMETER_CIRCLE_IMAGE", "DIAM_ELLI_MAJOR_IMG")
DIAMETER_M_ALIASES = ("diameter_m", "diam_m", "d_m")
X_ALIASES = ("x", "x_map")
Y_ALIASES = ("y", "y_map")
SCORE_ALIASES = ("score",)
DELIMITERS = ",\t;"
LONLAT, MAP, AS_NAMED = "lon/lat", "map x/y", "as named"     # what a table's (a, b) are


def _header_preview(header: Sequence[str]) -> str:
    """The header's first names, for error messages."""
    return ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")


class CatalogueError(DataError):
    """A crater catalogue we cannot read: missing file, no recognisable columns, no usable row."""


class MissingColumns(CatalogueError):
    """The columns the caller named are not all in the file's header."""

    def __init__(self, path: str, missing: Sequence[str], header: Sequence[str]) -> None:
        self.path, self.missing = path, tuple(missing)
        super().__init__(f"crater catalogue {path} has no column(s) {', '.join(missing)} (its header: "
                         f"{_header_preview(header)}): name its x, y and diameter columns "
                         "(compare_catalogues.py --columns X,Y,DIAMETER)")


@dataclass(frozen=True)
class CraterTable:
    """Crater centres (a, b), diameters and scores; `place` says what (a, b) are: LONLAT (degrees) or MAP (the
    raster's CRS) with diameters in metres, or AS_NAMED (the named columns' values as the file holds them)."""

    a: np.ndarray
    b: np.ndarray
    diameter: np.ndarray
    score: np.ndarray
    place: str
    columns: Tuple[str, str, str]       # the file's own names of the columns read
    rows_read: int
    rows_skipped: int                   # empty, non-numeric or out-of-range values

    def __len__(self) -> int:
        return len(self.diameter)

    def craters(self) -> Craters:
        """The table as craters (x = a, y = b), for the comparison."""
        return Craters(self.a, self.b, self.diameter, self.score)

    def lonlat(self, geo: GeoReference) -> Tuple[np.ndarray, np.ndarray]:
        """Longitudes (-180..180) and latitudes of the centres; map coordinates go through `geo`'s CRS."""
        if self.place == LONLAT:
            return (self.a + 180.0) % 360.0 - 180.0, self.b.copy()
        if self.place == MAP:
            return geo.to_lonlat(self.a, self.b)
        raise CatalogueError(f"crater catalogue columns {', '.join(self.columns)} were read as named, not as "
                             "lon/lat or map coordinates: read the catalogue without naming its columns")


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


def _named_columns(header: Sequence[str], names: Sequence[str], path: str) -> Tuple[int, int, int]:
    """Indices of the three columns the caller named, or MissingColumns."""
    found = [_find(header, (name,)) for name in names]
    missing = [name for name, index in zip(names, found) if index is None]
    if missing:
        raise MissingColumns(path, missing, header)
    return tuple(found)


def _choose_columns(header: Sequence[str], path: str) -> Tuple[Tuple[int, int, int], str, float]:
    """(indices of position a, b and diameter, LONLAT or MAP, metres per diameter unit) or a CatalogueError."""
    diameter_km, diameter_m = _find(header, DIAMETER_KM_ALIASES), _find(header, DIAMETER_M_ALIASES)
    diameter, unit = (diameter_km, 1000.0) if diameter_km is not None else (diameter_m, 1.0)
    lon, lat = _find(header, LON_ALIASES), _find(header, LAT_ALIASES)
    x, y = _find(header, X_ALIASES), _find(header, Y_ALIASES)
    if diameter is not None and lon is not None and lat is not None:
        return (lon, lat, diameter), LONLAT, unit
    if diameter is not None and x is not None and y is not None:
        return (x, y, diameter), MAP, unit
    raise CatalogueError(f"crater catalogue {path}: no recognisable columns in its header "
                         f"({_header_preview(header)}): name them {accepted_names()}")


def _delimiter(first_line: str) -> str:
    """The separator of the header line: the candidate it contains most often."""
    return max(DELIMITERS, key=first_line.count)


def _read_rows(path: str) -> Tuple[List[str], List[List[str]]]:
    """The header and the rows that are not blank, or a CatalogueError naming the file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # Excel's "CSV UTF-8" starts with a BOM
            first = handle.readline()
            handle.seek(0)
            reader = csv.reader(handle, delimiter=_delimiter(first))
            header = next(reader, [])
            return header, [row for row in reader if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise CatalogueError(f"crater catalogue {path} not found: check the path") from None
    except UnicodeDecodeError:
        raise CatalogueError(f"crater catalogue {path} is not a text (CSV) file: export the database as "
                             "CSV with a header line") from None


def _parse(rows: List[List[str]], indices: Tuple[int, int, int], score: Optional[int]) -> Tuple[np.ndarray, int]:
    """[k, 4] (a, b, diameter, score) of the rows whose cells are finite numbers (an empty score is 1); the count
    of the others."""
    values = []
    for row in rows:
        try:
            cells = [float(row[i]) for i in indices]
            cells.append(float(row[score]) if score is not None and row[score].strip() else 1.0)
        except (ValueError, IndexError):
            continue
        if all(math.isfinite(v) for v in cells):
            values.append(cells)
    return np.asarray(values, np.float64).reshape(-1, 4), len(rows) - len(values)


def _in_range(values: np.ndarray, place: str) -> np.ndarray:
    """Rows with a positive diameter, and for LONLAT a longitude in -180..360 and a latitude in -90..90."""
    ok = values[:, 2] > 0
    if place == LONLAT:
        ok &= (values[:, 0] >= -180) & (values[:, 0] <= 360) & (np.abs(values[:, 1]) <= 90)
    return ok


def read_catalogue(path: str, columns: Optional[Sequence[str]] = None) -> CraterTable:
    """The craters of a CSV/TSV catalogue: by the database's own column names, or by `columns` (x, y, diameter)
    taken as they stand. Rows without usable values are counted and skipped; a file with rows but none usable
    is a CatalogueError, a header alone an empty table."""
    header, rows = _read_rows(path)
    if columns is None:
        indices, place, unit = _choose_columns(header, path)
    else:
        indices, place, unit = _named_columns(header, columns, path), AS_NAMED, 1.0
    values, skipped = _parse(rows, indices, _find(header, SCORE_ALIASES))
    in_range = _in_range(values, place)
    skipped += int((~in_range).sum())
    values = values[in_range]
    if rows and len(values) == 0:
        raise CatalogueError(f"crater catalogue {path}: none of its {len(rows)} rows holds usable numbers in "
                             f"columns {', '.join(header[i] for i in indices)}: check the file's contents")
    return CraterTable(a=values[:, 0], b=values[:, 1], diameter=values[:, 2] * unit, score=values[:, 3], place=place,
                       columns=tuple(header[i].strip() for i in indices), rows_read=len(rows), rows_skipped=skipped)


def describe(table: CraterTable, path: str) -> str:
    """One log line: what was read from where."""
    skipped = f", {table.rows_skipped} rows skipped (empty, non-numeric or out of range)" if table.rows_skipped else ""
    return (f"{path}: {len(table)} craters by {table.place} from columns {', '.join(table.columns)} of "
            f"{table.rows_read} rows{skipped}")
