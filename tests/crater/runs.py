"""Crater runs for the tests: the exp files and a tiny from-scratch run of the crater command."""
from pathlib import Path
from typing import List

from tests.tools.conftest import REPO, load_tool

NANO_EXP = str(REPO / "exps" / "crater" / "yolox_nano_crater.py")
S_EXP = str(REPO / "exps" / "crater" / "yolox_s_crater.py")


def crater_main(argv: List[str], policy=None) -> dict:
    """tools/train_crater_device_aware.py's main on argv."""
    return load_tool("train_crater_device_aware").main(argv, policy=policy)


def tiny_run_argv(data_dir: Path, out_dir: Path, *extra: str) -> List[str]:
    return ["-f", NANO_EXP, "--data-dir", str(data_dir), "-c", "none", "--max-batch", "2", *extra,
            "input_size", "(64,64)", "test_size", "(64,64)", "random_size", "(2,2)", "max_epoch", "1",
            "warmup_epochs", "0", "no_aug_epochs", "0", "eval_interval", "1", "data_num_workers", "0",
            "output_dir", str(out_dir)]
