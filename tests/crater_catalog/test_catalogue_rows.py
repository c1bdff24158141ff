"""Catalogue rows a user's reference CSV may hold: valid ones must be read (read_catalogue with named columns)."""
import numpy as np
import pytest

from yolox.crater_catalog.catalogue_reader import read_catalogue

PIXEL_COLUMNS = ("x_px", "y_px", "diameter_px")


def test_plain_catalogue_with_crlf_scientific_notation_quotes_and_extra_columns(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_bytes(b'"name","x_px","y_px","diameter_px",score\r\nA,1.5e2,20,1E1,\r\nB,"30",40,5,0.5\r\n\r\n')
    craters = read_catalogue(str(path), PIXEL_COLUMNS).craters()
    np.testing.assert_allclose(craters.x, [150, 30])
    np.testing.assert_allclose(craters.diameter, [10, 5])
    np.testing.assert_allclose(craters.score, [1.0, 0.5])


def test_catalogue_saved_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_bytes("\ufeffx_px,y_px,diameter_px\n1,2,3\n".encode("utf-8"))
    assert len(read_catalogue(str(path), PIXEL_COLUMNS)) == 1


def test_named_columns_follow_the_databases_row_rule_and_name_what_is_missing(tmp_path):
    from yolox.crater_catalog.catalogue_reader import AS_NAMED, MissingColumns
    from yolox.utils.user_errors import UserError

    path = tmp_path / "ref.csv"
    path.write_text("x_px,y_px,diameter_px\n1,2,3\nx,2,3\n4,5,0\n6,7,8\n")
    table = read_catalogue(str(path), PIXEL_COLUMNS)
    assert (len(table), table.rows_read, table.rows_skipped, table.place) == (2, 4, 2, AS_NAMED)
    np.testing.assert_allclose(table.diameter, [3, 8])      # as the file holds them, no unit conversion
    with pytest.raises(MissingColumns) as error:
        read_catalogue(str(path), ("lon", "lat", "diameter_m"))
    assert isinstance(error.value, UserError) and error.value.missing == ("lon", "lat", "diameter_m")
    assert str(path) in str(error.value) and "\n" not in str(error.value)
