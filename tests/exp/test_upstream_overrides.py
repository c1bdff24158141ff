"""Exp files written for upstream YOLOX train and evaluate: overrides with upstream's signatures that call super
with upstream's arguments (get_model caching self.model, get_optimizer reading self.model to freeze the backbone,
get_lr_scheduler, get_evaluator), through the training command's own run function."""
import pytest
import torch

from tests.fixtures.tiny_coco import write_exp_file
from tests.tools.conftest import load_tool
from yolox.utils.checkpoint import load_checkpoint_file

# methods appended to the class body of tests/fixtures/tiny_coco.py's EXP_TEMPLATE (a user-style exp)
UPSTREAM_OVERRIDES = '''
    def called(self, name):
        with open(os.path.join(self.output_dir, "calls.txt"), "a") as calls:
            calls.write(name + "\\n")

    def get_model(self):
        self.called("get_model")
        if "model" not in self.__dict__:
            self.model = super().get_model()
        return self.model

    def get_optimizer(self, batch_size):
        self.called("get_optimizer")
        for param in self.model.backbone.parameters():
            param.requires_grad = False
        return super().get_optimizer(batch_size)

    def get_lr_scheduler(self, lr, iters_per_epoch):
        self.called("get_lr_scheduler")
        return super().get_lr_scheduler(lr, iters_per_epoch)

    def get_evaluator(self, batch_size, is_distributed, testdev=False, legacy=False):
        self.called("get_evaluator")
        return super().get_evaluator(batch_size, is_distributed, testdev, legacy)
'''

PASS_THROUGH_OPTIMIZER = '''
    def get_optimizer(self, *args, **kwargs):
        for param in self.model.backbone.parameters():
            param.requires_grad = False
        return super().get_optimizer(*args, **kwargs)
'''


def train_user_exp(tmp_path, data_dir, body: str):
    exp_file = write_exp_file(tmp_path / "upstream_exp.py", data_dir, tmp_path / "out", max_epoch=1,
                              no_aug_epochs=0)
    exp_file.write_text(exp_file.read_text().rstrip("\n") + "\n" + body)
    load_tool("train").main(["-f", str(exp_file), "-b", "4", "--device", "cpu", "-expn", "run", "seed", "0"])
    return tmp_path / "out" / "run", exp_file


def frozen_and_trained(run_dir) -> tuple:
    """(backbone unchanged, head changed) between the seeded initial weights and the trained ones."""
    from yolox.exp import get_exp

    ckpt = load_checkpoint_file(run_dir / "latest_ckpt.pth")["train_model"]
    exp = get_exp(str(run_dir.parent.parent / "upstream_exp.py"))
    torch.manual_seed(0)
    initial = exp.get_model().state_dict()
    changed = {name for name, value in ckpt.items() if value.is_floating_point() and "running" not in name
               and "num_batches" not in name and not torch.equal(value, initial[name])}
    backbone = {name for name in changed if name.startswith("backbone.backbone")}
    return not backbone, any(name.startswith("head.") for name in changed)


@pytest.mark.parametrize("body", [UPSTREAM_OVERRIDES, PASS_THROUGH_OPTIMIZER], ids=["upstream", "args-kwargs"])
def test_an_upstream_exp_trains_and_evaluates(tmp_path, tiny_coco_dir, body, one_thread):
    run_dir, _ = train_user_exp(tmp_path, tiny_coco_dir, body)
    history = (run_dir / "eval_history.jsonl").read_text().splitlines()
    assert len(history) == 1 and (run_dir / "best_ckpt.pth").is_file()
    backbone_frozen, head_trained = frozen_and_trained(run_dir)
    assert backbone_frozen and head_trained
    if body is UPSTREAM_OVERRIDES:
        calls = set((tmp_path / "out" / "calls.txt").read_text().split())
        assert calls == {"get_model", "get_optimizer", "get_lr_scheduler", "get_evaluator"}
