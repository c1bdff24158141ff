"""setup_env, logger and BN-statistics helpers."""
import os

import pytest
import torch
from torch import nn

from yolox.utils import setup_env
from yolox.utils.allreduce_norm import all_reduce_norm, get_async_norm_states
from yolox.utils.logger import StreamToLoguru, build_metric_writer, setup_logger


def test_configure_module_and_omp(monkeypatch):
    monkeypatch.delenv("OPENCV_OPENCL_RUNTIME", raising=False)
    setup_env.configure_module()
    assert os.environ["OPENCV_OPENCL_RUNTIME"] == "disabled"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    setup_env.configure_omp()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    setup_env.configure_omp()
    assert os.environ["OMP_NUM_THREADS"] == "4"


def test_nccl_hca_scan_reads_roce_v2_adapters(tmp_path, monkeypatch):
    for name, kind in (("mlx5_0", "RoCE v2"), ("mlx5_1", "IB/RoCE v1")):
        types = tmp_path / name / "ports" / "1" / "gid_attrs" / "types"
        types.mkdir(parents=True)
        (types / "3").write_text(kind)
    assert setup_env._roce_v2_hcas(str(tmp_path)) == ["mlx5_0"]
    monkeypatch.setattr(setup_env, "_roce_v2_hcas", lambda: [])
    monkeypatch.setenv("NCCL_IB_HCA", "keep")
    setup_env.configure_nccl()
    assert os.environ["NCCL_IB_HCA"] == "keep" and os.environ["NCCL_IB_TC"] == "106"


def test_setup_logger_writes_rank0_file(tmp_path):
    from loguru import logger

    setup_logger(str(tmp_path), distributed_rank=0, filename="train_log.txt")
    logger.info("hello trainer")
    assert "hello trainer" in (tmp_path / "train_log.txt").read_text()


def test_stream_passes_other_writers_through(capsys):
    import sys

    stream = StreamToLoguru(sys.__stdout__)
    assert stream.write("plain\n") == len("plain\n")
    stream.flush()


def test_metric_writer_choices(tmp_path):
    writer = build_metric_writer("tensorboard", str(tmp_path))
    writer.add_scalars({"train/lr": 0.1}, 1)
    writer.close()
    with pytest.raises(ValueError, match="not supported"):
        build_metric_writer("wandb", str(tmp_path))
    with pytest.raises(ValueError, match="Unknown logger"):
        build_metric_writer("csv", str(tmp_path))


def test_norm_states_and_single_process_noop():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Sequential(nn.InstanceNorm2d(2, affine=True)))
    keys = list(get_async_norm_states(model))
    assert keys[:5] == ["1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert "2.0.weight" in keys and "0.weight" not in keys
    before = {k: v.clone() for k, v in model.state_dict().items()}
    all_reduce_norm(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
