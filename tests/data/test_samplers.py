import itertools
import os
import random

import numpy as np
import torch

from yolox.data import InfiniteSampler, YoloBatchSampler, get_yolox_datadir, worker_init_reset_seed
from yolox.data.samplers import derive_sample_seed


def take(iterable, n):
    return list(itertools.islice(iterable, n))


def test_infinite_sampler_chains_seeded_permutations():
    generator = torch.Generator()
    generator.manual_seed(5)
    expected = torch.randperm(6, generator=generator).tolist() + torch.randperm(6, generator=generator).tolist()
    assert take(InfiniteSampler(6, seed=5), 12) == expected
    assert take(InfiniteSampler(4, shuffle=False), 6) == [0, 1, 2, 3, 0, 1]
    assert len(InfiniteSampler(10, world_size=3)) == 3


def test_infinite_sampler_start_resumes_the_stream():
    full = take(InfiniteSampler(7, seed=3), 30)
    assert take(InfiniteSampler(7, seed=3, start=11), 19) == full[11:]


def test_ranks_split_the_global_stream():
    full = take(InfiniteSampler(9, seed=1), 20)
    rank0 = take(InfiniteSampler(9, seed=1, rank=0, world_size=2), 10)
    rank1 = take(InfiniteSampler(9, seed=1, rank=1, world_size=2), 10)
    assert rank0 == full[0::2] and rank1 == full[1::2]
    resumed = take(InfiniteSampler(9, seed=1, rank=1, world_size=2, start=4), 6)
    assert resumed == rank1[4:]


def test_batches_carry_flag_index_and_position_seed():
    sampler = YoloBatchSampler(InfiniteSampler(5, seed=0), batch_size=3, drop_last=False, mosaic=True, seed=9)
    batches = take(iter(sampler), 2)
    indices = take(InfiniteSampler(5, seed=0), 6)
    flat = batches[0] + batches[1]
    assert [item[1] for item in flat] == indices
    assert all(item[0] is True for item in flat)
    assert [item[2] for item in flat] == [derive_sample_seed(9, p) for p in range(6)]
    assert len({item[2] for item in flat}) == 6


def test_resumed_batches_equal_the_original_stream():
    original = take(iter(YoloBatchSampler(InfiniteSampler(8, seed=2), batch_size=4, drop_last=False, seed=1)), 3)
    resumed = take(iter(YoloBatchSampler(InfiniteSampler(8, seed=2, start=8), batch_size=4, drop_last=False,
                                         seed=1)), 1)
    assert resumed[0] == original[2]


def test_ranks_get_different_seeds():
    def first_seeds(rank):
        sampler = InfiniteSampler(8, seed=2, rank=rank, world_size=2)
        return [item[2] for item in next(iter(YoloBatchSampler(sampler, batch_size=4, drop_last=False, seed=1)))]

    assert not set(first_seeds(0)) & set(first_seeds(1))


def test_unseeded_batches_have_no_seed_and_flag_follows_switch():
    sampler = YoloBatchSampler(InfiniteSampler(4, seed=0), batch_size=2, drop_last=False, mosaic=True)
    stream = iter(sampler)
    assert [item[2] for item in next(stream)] == [None, None]
    sampler.mosaic = False
    assert [item[0] for item in next(stream)] == [False, False]


def test_finite_sampler_keeps_last_partial_batch():
    batches = list(YoloBatchSampler(range(5), batch_size=2, drop_last=False, seed=0))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert len(list(YoloBatchSampler(range(5), batch_size=2, drop_last=True))) == 2


def test_worker_seed_follows_torch_seed():
    draws = []
    for _ in range(2):
        torch.manual_seed(21)
        worker_init_reset_seed(0)
        draws.append((random.random(), np.random.rand()))
    assert draws[0] == draws[1]


def test_yolox_datadir(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLOX_DATADIR", str(tmp_path))
    assert get_yolox_datadir() == str(tmp_path)
    monkeypatch.delenv("YOLOX_DATADIR")
    import yolox

    repo = os.path.dirname(os.path.dirname(os.path.abspath(yolox.__file__)))
    assert get_yolox_datadir() == os.path.join(repo, "datasets")
