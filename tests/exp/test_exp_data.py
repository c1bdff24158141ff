"""Loaders and evaluator built by the Exp from the THEMIS crater set."""
import pytest
import torch

from yolox.exp import get_exp
from yolox.utils.device import build_policy


@pytest.fixture
def crater_exp(themis_dir):
    exp = get_exp(None, "yolox-nano")
    exp.data_dir = str(themis_dir)
    exp.num_classes = 1
    exp.data_num_workers = 0
    return exp


class GroundTruthModel(torch.nn.Module):
    """Answers each image of a sequential eval loader with its ground-truth boxes (cx, cy, w, h, obj, cls)."""

    def __init__(self, dataset) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.labels = [dataset.load_anno(index) for index in range(len(dataset))]
        self.cursor = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows = max(len(labels) for labels in self.labels)
        outputs = torch.zeros(images.shape[0], rows, 6)
        for slot in range(images.shape[0]):
            labels = torch.as_tensor(self.labels[self.cursor], dtype=torch.float32)
            boxes = labels[:, :4]  # x1, y1, x2, y2 in letterboxed pixels
            outputs[slot, : len(labels), :2] = (boxes[:, :2] + boxes[:, 2:]) / 2
            outputs[slot, : len(labels), 2:4] = boxes[:, 2:] - boxes[:, :2]
            outputs[slot, : len(labels), 4:] = 1.0
            self.cursor += 1
        return outputs


def test_evaluator_from_exp_scores_ground_truth_one(crater_exp):
    crater_exp.eval_max_dets = 100
    crater_exp.nmsthre = 1.0  # keep touching craters apart: this checks the evaluation, not NMS
    evaluator = crater_exp.get_evaluator(batch_size=32, is_distributed=False)
    dataset = evaluator.dataloader.dataset
    assert len(dataset) == 126 and evaluator.max_dets == 100
    assert tuple(evaluator.img_size) == (416, 416)
    ap50_95, ap50, summary = crater_exp.eval(GroundTruthModel(dataset), evaluator, False)
    assert ap50_95 == pytest.approx(1.0) and ap50 == pytest.approx(1.0)
    assert "Average forward time" in summary


def test_num_classes_mismatch_is_a_clear_error(crater_exp):
    crater_exp.num_classes = 80
    with pytest.raises(ValueError, match="num_classes=80.*set num_classes = 1"):
        crater_exp.get_eval_dataset()


def first_batch(exp, batch_size: int = 2):
    loader = exp.get_data_loader(batch_size, is_distributed=False)
    assert not hasattr(loader.dataset._dataset, "_dataset")  # one mosaic layer, however often rebuilt
    images, labels, _, _ = next(iter(loader))
    return images, labels


def test_train_loader_is_reproducible_with_a_seed(crater_exp):
    crater_exp.input_size = (128, 128)
    crater_exp.seed = 42
    images, labels = first_batch(crater_exp)
    assert images.shape == (2, 3, 128, 128) and labels.shape == (2, crater_exp.max_labels, 5)
    again_images, again_labels = first_batch(crater_exp)
    assert torch.equal(images, again_images) and torch.equal(labels, again_labels)
    crater_exp.seed = 43
    other_images, _ = first_batch(crater_exp)
    assert not torch.equal(images, other_images)


def test_loaders_take_settings_from_the_policy(crater_exp):
    crater_exp.data_num_workers = 4
    assert crater_exp.loader_kwargs() == {"num_workers": 4, "pin_memory": False}
    loader = crater_exp.get_eval_loader(batch_size=8, is_distributed=False, policy=build_policy("cpu", num_workers=0))
    assert loader.num_workers == 0 and loader.pin_memory is False


def test_eval_loader_leaves_the_training_rng_alone(crater_exp):
    # a checkpoint stores torch's RNG before the epoch's evaluation: if evaluating drew from it, a run resumed
    # after a kill during an evaluation would continue on a different stream than the unbroken run
    torch.manual_seed(0)
    before = torch.get_rng_state()
    next(iter(crater_exp.get_eval_loader(batch_size=2, is_distributed=False)))
    assert torch.equal(torch.get_rng_state(), before)
