"""Two gloo ranks give the single-process AP (padded duplicates counted once) and share random_resize sizes."""
import contextlib
import io
import json
import os
import random
import socket

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from pycocotools.coco import COCO
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from tests.conftest import shared_path
from tests.evaluators.test_coco_evaluator import (
    TEST_SIZE, IndexedImages, ReplayModel, model_rows, perturbed_detections,
)
from yolox.evaluators import COCOEvaluator
from yolox.exp import get_exp

NUM_IMAGES = 125  # odd: DistributedSampler pads rank 1 with a repeat of the first image


def evaluator_and_model(annotations: str, rank_sampler=None):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(annotations)
    dataset = IndexedImages(coco)
    dataset.ids = dataset.ids[:NUM_IMAGES]
    rng = np.random.default_rng(11)
    rows = [model_rows(perturbed_detections(coco, image_id, rng), TEST_SIZE[0] / 416) for image_id in dataset.ids]
    loader = DataLoader(dataset, batch_size=8, sampler=rank_sampler(dataset) if rank_sampler else None)
    evaluator = COCOEvaluator(loader, TEST_SIZE, confthre=0.01, nmsthre=1.0, num_classes=1)
    return evaluator, ReplayModel(rows)


def run_rank(rank: int, port: int, annotations: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        sampler = lambda dataset: DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=False)  # noqa: E731
        evaluator, model = evaluator_and_model(annotations, sampler)
        ap50_95, ap50, _ = evaluator.evaluate(model, distributed=True)
        exp = get_exp(None, "yolox-s")
        random.seed(rank)  # different local draws: only rank 0's may be used
        sizes = [exp.random_resize(None, 0, rank, True) for _ in range(5)]
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as out:
            json.dump({"ap": [float(ap50_95), float(ap50)], "sizes": sizes}, out)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_equal_one(tmp_path):
    annotations = str(shared_path("datasets", "themis_mars", "annotations", "instances_val2017.json"))
    mp.spawn(run_rank, args=(free_port(), annotations, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    evaluator, model = evaluator_and_model(annotations)
    single_ap50_95, single_ap50, _ = evaluator.evaluate(model)
    assert ranks[0]["ap"] == [single_ap50_95, single_ap50]
    assert ranks[1]["ap"] == [0, 0]  # only rank 0 evaluates
    assert ranks[0]["sizes"] == ranks[1]["sizes"]
