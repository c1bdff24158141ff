"""Locating experiments by name or file, exp_name, and upstream-style exp files."""
import importlib
import textwrap
from pathlib import Path

import pytest

from yolox.exp import Exp, check_exp_value, get_exp

REPO = Path(__file__).resolve().parents[2]
SIZES = {"yolox_nano": (0.33, 0.25), "yolox_tiny": (0.33, 0.375), "yolox_s": (0.33, 0.50),
         "yolox_m": (0.67, 0.75), "yolox_l": (1.0, 1.0), "yolox_x": (1.33, 1.25), "yolov3": (1.0, 1.0)}


@pytest.mark.parametrize("module_name", sorted(SIZES))
def test_by_name_with_dash_or_underscore(module_name):
    for name in {module_name, module_name.replace("_", "-")}:
        exp = get_exp(None, name)
        assert (exp.depth, exp.width) == SIZES[module_name]
        assert exp.exp_name == module_name


def test_small_models_settings():
    nano, tiny = get_exp(None, "yolox-nano"), get_exp(None, "yolox-tiny")
    for exp in (nano, tiny):
        assert exp.input_size == exp.test_size == (416, 416)
        assert exp.random_size == (10, 20) and exp.mosaic_scale == (0.5, 1.5)
        assert exp.enable_mixup is False
    assert nano.mosaic_prob == 0.5 and tiny.mosaic_prob == 1.0
    assert get_exp(None, "yolox-s").random_size is None


def test_default_package_resolves_to_repo_exps():
    module = importlib.import_module("yolox.exp.default.yolox_s")
    assert Path(module.__file__).resolve() == REPO / "exps" / "default" / "yolox_s.py"


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="yolox_nano.*yolox_s"):
        get_exp(None, "yolox-q")


def test_nothing_given():
    with pytest.raises(ValueError, match="exp file"):
        get_exp()


def test_base_exp_name():
    assert Exp().exp_name == "yolox_base"


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


UPSTREAM_STYLE = """
    import os

    from yolox.exp import Exp as MyExp


    class Exp(MyExp):
        def __init__(self):
            super(Exp, self).__init__()
            self.depth = 0.33
            self.width = 0.25
            self.num_classes = 1
            self.max_epoch = 50
            self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]
"""


def test_upstream_style_file(tmp_path):
    exp = get_exp(str(write(tmp_path, "my_craters.v2.py", UPSTREAM_STYLE)), "yolox-s")
    assert (exp.depth, exp.width, exp.num_classes, exp.max_epoch) == (0.33, 0.25, 1, 50)
    assert exp.exp_name == "my_craters"
    exp.merge(["max_epoch", "10", "ema", "False", "seed", "42"])
    assert (exp.max_epoch, exp.ema, exp.seed) == (10, False, 42)


def test_subclass_without_exp_name_inherits_parent(tmp_path):
    body = "from yolox.exp import Exp as MyExp\n\nclass Exp(MyExp):\n    pass\n"
    assert get_exp(str(write(tmp_path, "plain.py", body))).exp_name == "yolox_base"


def test_same_stem_in_two_folders_loads_each_file(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write(first, "twin.py", UPSTREAM_STYLE)
    write(second, "twin.py", UPSTREAM_STYLE.replace("max_epoch = 50", "max_epoch = 60"))
    assert get_exp(str(first / "twin.py")).max_epoch == 50
    assert get_exp(str(second / "twin.py")).max_epoch == 60


def test_import_error_names_the_real_cause(tmp_path):
    path = write(tmp_path, "broken_import.py", "import no_such_package_xyz\n")
    with pytest.raises(ImportError, match="broken_import.py failed to import: ModuleNotFoundError.*no_such_package_xyz"):
        get_exp(str(path))


def test_error_in_init_names_the_real_cause(tmp_path):
    body = "from yolox.exp import Exp as MyExp\n\nclass Exp(MyExp):\n    def __init__(self):\n        raise KeyError('oops')\n"
    with pytest.raises(RuntimeError, match="Exp\\(\\) raised KeyError"):
        get_exp(str(write(tmp_path, "bad_init.py", body)))


def test_file_without_exp_class(tmp_path):
    with pytest.raises(ImportError, match="defines no class named 'Exp'"):
        get_exp(str(write(tmp_path, "no_class.py", "x = 1\n")))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.py"):
        get_exp(str(tmp_path / "nowhere.py"))


@pytest.mark.parametrize("name, depth, width", [("yolox_s.py", 0.33, 0.50), ("nano.py", 0.33, 0.25)])
def test_custom_examples(name, depth, width):
    exp = get_exp(str(REPO / "exps" / "example" / "custom" / name))
    assert (exp.depth, exp.width, exp.num_classes) == (depth, width, 71)
    assert exp.data_dir == "datasets/coco128"
    assert exp.exp_name == name[:-3]


def test_custom_nano_builds_depthwise_model():
    model = get_exp(str(REPO / "exps" / "example" / "custom" / "nano.py")).get_model()
    keys = model.state_dict().keys()
    assert any(".dconv." in key for key in keys)
    assert model.head.cls_preds[0].out_channels == 71


def test_check_exp_value():
    exp = Exp()
    check_exp_value(exp)
    exp.input_size = (640, 630)
    with pytest.raises(ValueError, match="multiples of 32"):
        check_exp_value(exp)


def test_repr_lists_public_attributes():
    exp = get_exp(None, "yolox-nano")
    exp._hidden = 1
    table = repr(exp)
    assert "keys" in table.splitlines()[1] and "values" in table.splitlines()[1]
    assert "mosaic_prob" in table and "0.5" in table and "_hidden" not in table


def test_file_named_like_a_loaded_module_is_refused(tmp_path):
    with pytest.raises(ImportError, match="name 'json' is already taken.*rename the exp file"):
        get_exp(str(write(tmp_path, "json.py", UPSTREAM_STYLE)))
    import json

    assert hasattr(json, "dumps")
