"""Crater databases under their own column names, both longitude conventions, skipped rows, one-line errors."""
import subprocess
import sys

import numpy as np
import pytest

from tests.tools.conftest import REPO
from yolox.crater_catalog.catalogue_reader import LONLAT, MAP, CatalogueError, read_catalogue
from yolox.utils.user_errors import UserError


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("header, sep", [
    ("lon,lat,diameter_km", ","),
    ("LONGITUDE,Latitude,DIAM", ","),
    ("CRATER_ID,LAT_CIRC_IMG,LON_CIRC_IMG,LAT_ELLI_IMG,LON_ELLI_IMG,DIAM_CIRC_IMG,DIAM_ELLI_MAJOR_IMG", ","),
    ("CRATER_ID\tLATITUDE_CIRCLE_IMAGE\tLONGITUDE_CIRCLE_IMAGE\tDIAMETER_CIRCLE_IMAGE", "\t"),
    ("Lon;Lat;Diam_km", ";"),
])
def test_database_column_names_are_recognised(tmp_path, header, sep):
    names = header.split(sep)
    values = {"lon": "350.5", "lat": "-12.25", "diam": "3.5"}
    row = []
    for name in names:
        low = name.lower()
        row.append("99" if "elli" in low else values["lon"] if "lon" in low else values["lat"] if "lat" in low
                   else values["diam"] if "diam" in low else "id-1")
    table = read_catalogue(write(tmp_path / "db.csv", sep.join(names) + "\n" + sep.join(row) + "\n"))
    assert table.place == LONLAT and len(table) == 1
    assert (table.a[0], table.b[0], table.diameter[0]) == (350.5, -12.25, 3500.0)


def test_metres_and_map_coordinates(tmp_path):
    ours = read_catalogue(write(tmp_path / "ours.csv", "x_px,y_px,diameter_px,x_map,y_map,diameter_m,lon,lat\n"
                                                       "1,2,3,1000,2000,800,-20,45\n"))
    assert ours.place == LONLAT and ours.diameter[0] == 800.0 and ours.a[0] == -20.0
    projected = read_catalogue(write(tmp_path / "map.csv", "X,Y,Diameter_m\n1000,2000,800\n"))
    assert projected.place == MAP and (projected.a[0], projected.b[0]) == (1000.0, 2000.0)


def test_unusable_rows_are_counted_and_skipped(tmp_path):
    table = read_catalogue(write(tmp_path / "db.csv", "lon,lat,diameter_km\n10,20,1\n,20,1\n10,95,1\nx,1,1\n"
                                                      "-170,-10,2\n10,10,0\n"))
    assert len(table) == 2 and table.rows_read == 6 and table.rows_skipped == 4
    assert np.array_equal(table.a, [10.0, -170.0])


def test_unrecognised_columns_are_one_line_naming_file_and_names(tmp_path):
    path = write(tmp_path / "bad.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(CatalogueError) as error:
        read_catalogue(path)
    message = str(error.value)
    assert isinstance(error.value, UserError) and "\n" not in message
    for text in (path, "LAT_CIRC_IMG", "diameter_km", "x_map"):
        assert text in message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(CatalogueError, match="not found"):
        read_catalogue(str(tmp_path / "none.csv"))


def test_cli_reports_a_bad_catalogue_in_one_line(tmp_path):
    pytest.importorskip("rasterio", reason="the geo extra (pip install -e '.[geo]') is not installed")
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    with rasterio.open(str(tmp_path / "m.tif"), "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs=CRS.from_string("+proj=eqc +R=3396190 +units=m +no_defs"),
                       transform=from_origin(0, 0, 100, 100)) as dst:
        dst.write(np.ones((1, 64, 64), np.uint8))
    bad = write(tmp_path / "bad.csv", "a,b,c\n1,2,3\n")
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_crater_tiles.py"), str(tmp_path / "m.tif"),
                             bad, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: crater catalogue") and bad in last and "LON_CIRC_IMG" in last
