"""`yolox.utils` keeps upstream's flat names without importing torch for `mps_patch`."""
import subprocess
import sys

import pytest

import yolox.utils


@pytest.mark.parametrize("name", sorted(yolox.utils._MODULE_OF))
def test_every_exported_name_resolves(name):
    assert getattr(yolox.utils, name) is not None


def test_upstream_style_imports_work_and_unknown_names_fail():
    from yolox.utils import fuse_model, postprocess, setup_logger  # noqa: F401 - the import is the check

    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        yolox.utils.not_a_name


def test_importing_mps_patch_does_not_import_torch():
    code = "import sys, yolox.utils.mps_patch; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
