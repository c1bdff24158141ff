"""Command-line `KEY VALUE` overrides arrive with the attribute's type."""
import pytest

from yolox.exp import Exp, get_exp
from yolox.exp.opts import OptsError


@pytest.fixture
def exp() -> Exp:
    return get_exp(None, "yolox-s")


def test_int_bool_and_none_defaults(exp):
    exp.merge(["max_epoch", "10", "ema", "False", "seed", "42"])
    assert exp.max_epoch == 10 and type(exp.max_epoch) is int
    assert exp.ema is False
    assert exp.seed == 42 and type(exp.seed) is int


@pytest.mark.parametrize("text, expected", [("true", True), ("1", True), ("Yes", True),
                                            ("false", False), ("0", False), ("no", False)])
def test_bool_words(exp, text, expected):
    exp.ema = not expected
    exp.merge(["ema", text])
    assert exp.ema is expected


def test_bad_bool_is_an_error(exp):
    with pytest.raises(OptsError, match="enable_mixup='maybe' is not a boolean"):
        exp.merge(["enable_mixup", "maybe"])


def test_floats(exp):
    exp.merge(["basic_lr_per_img", "0.001", "test_conf", "1e-3", "degrees", "5"])
    assert exp.basic_lr_per_img == 0.001 and exp.test_conf == 0.001
    assert exp.degrees == 5.0 and type(exp.degrees) is float


def test_bad_int_is_an_error(exp):
    with pytest.raises(OptsError, match="max_epoch='ten' is not an integer"):
        exp.merge(["max_epoch", "ten"])


@pytest.mark.parametrize("text", ["(320,320)", "320,320", "[320, 320]", "( 320 , 320 )"])
def test_tuple_of_ints(exp, text):
    exp.merge(["input_size", text])
    assert exp.input_size == (320, 320)
    assert all(type(value) is int for value in exp.input_size)


def test_tuple_element_type_follows_the_first_element(exp):
    exp.merge(["mosaic_scale", "0.5,2"])
    assert exp.mosaic_scale == (0.5, 2.0)
    assert all(type(value) is float for value in exp.mosaic_scale)


def test_tuple_length_is_checked(exp):
    with pytest.raises(OptsError, match="input_size='320' needs 2 comma-separated values, got 1"):
        exp.merge(["input_size", "320"])


def test_lists_take_any_length(exp):
    exp.milestones = [10, 20]
    exp.merge(["milestones", "[5, 8, 12]"])
    assert exp.milestones == [5, 8, 12]


def test_none_defaults_take_literals_or_text(exp):
    exp.merge(["data_dir", "/data/craters", "seed", "None"])
    assert exp.data_dir == "/data/craters" and exp.seed is None


def test_strings_stay_strings(exp):
    exp.merge(["output_dir", "123", "act", "relu"])
    assert exp.output_dir == "123" and exp.act == "relu"


def test_an_unknown_key_is_an_error_naming_the_nearest_field(exp):
    with pytest.raises(OptsError, match=r"^max_epochs is not an exp field; did you mean max_epoch\?$"):
        exp.merge(["seed", "3", "max_epochs", "30"])
    assert exp.seed is None      # nothing is set when any key is wrong
    with pytest.raises(OptsError, match="get_model is not an exp field"):
        exp.merge(["get_model", "1"])
    with pytest.raises(OptsError, match="declare it in your exp"):
        exp.merge(["zzzz_qqqq", "1"])


def test_a_users_own_field_declared_in_the_exp_is_a_key(exp):
    exp.crater_min_km = 1.0
    exp.merge(["crater_min_km", "2.5"])
    assert exp.crater_min_km == 2.5


@pytest.mark.parametrize("token", ["-c", "-b", "-f", "--ckpt"])
def test_a_flag_after_the_pairs_is_an_error(exp, token):
    with pytest.raises(OptsError, match=f"^{token} comes after the KEY VALUE overrides"):
        exp.merge(["max_epoch", "3", token, "x"])


def test_a_negative_number_is_a_value_not_a_flag(exp):
    exp.merge(["degrees", "-5", "seed", "-1"])
    assert exp.degrees == -5.0 and exp.seed == -1


def test_odd_length_is_an_error(exp):
    with pytest.raises(OptsError, match="odd count"):
        exp.merge(["max_epoch", "10", "ema"])


def test_non_string_values_are_set_as_given(exp):
    exp.merge(["max_epoch", 7, "input_size", (256, 256)])
    assert exp.max_epoch == 7 and exp.input_size == (256, 256)


def test_a_flag_after_the_overrides_is_refused_not_ignored():
    exp = Exp()
    with pytest.raises(OptsError, match="--time comes after the KEY VALUE overrides"):
        exp.merge(["max_epoch", "3", "--time", "45s"])
    assert exp.max_epoch != 3
