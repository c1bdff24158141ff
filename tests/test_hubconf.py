"""hubconf.py: torch.hub.load from the repository folder with a local checkpoint, and the no-download errors."""
from pathlib import Path

import pytest
import torch

from tests.conftest import shared_path

REPO = Path(__file__).resolve().parents[1]


def hub_load(entry: str, **kwargs):
    return torch.hub.load(str(REPO), entry, source="local", trust_repo=True, **kwargs)


def test_entry_points_are_upstreams():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    names = {name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")}
    assert {"yolox_nano", "yolox_tiny", "yolox_s", "yolox_m", "yolox_l", "yolox_x", "yolox_custom"} <= names


def test_nano_loads_a_local_checkpoint_strictly(tmp_path):
    torch.manual_seed(0)
    source = hub_load("yolox_nano", pretrained=False, device="cpu")
    path = tmp_path / "nano.pth"
    torch.save({"model": source.state_dict()}, path)
    torch.manual_seed(1)
    model = hub_load("yolox_nano", ckpt=str(path), device="cpu")
    assert not model.training
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_real_nano_weights_find_objects_on_the_fixture_image():
    import numpy as np

    path = shared_path("fixtures", "real_nano", "yolox_nano_from_onnx_bnfolded.pth")
    model = hub_load("yolox_nano", ckpt=str(path), device="cpu")
    image = torch.from_numpy(np.load(shared_path("fixtures", "real_nano", "dog_input416.npy")))
    with torch.no_grad():
        scores = model(image)[0, :, 4]  # objectness of every anchor
    assert float(scores.max()) > 0.8


@pytest.mark.parametrize("ckpt", [None, "no/such/yolox_s.pth"])
def test_pretrained_without_a_file_names_the_official_url(ckpt):
    with pytest.raises(FileNotFoundError, match=r"releases/download/0\.1\.1rc0/yolox_s\.pth .*pretrained=False"):
        hub_load("yolox_s", ckpt=ckpt)


def test_custom_builds_the_exp_model(tmp_path):
    model = hub_load("yolox_custom", exp_path=str(REPO / "exps" / "example" / "custom" / "nano.py"), device="cpu")
    assert model.head.cls_preds[0].out_channels == 71
