"""Two processes, each with its shard of the chunks, merged: the catalogue of one process, row for row."""
import json

import pytest

from tests.crater_catalog.runs import detect_args, fake_ckpt, finish, start_detection, write_disc_geotiff
from tests.tools.conftest import load_tool
from yolox.crater_catalog.chunks import BadShard, Shard, parse_shard, plan_chunks, shard_for
from yolox.crater_catalog.pipeline import IncompleteRun

pytest.importorskip("rasterio", reason="the geo extra (pip install -e '.[geo]') is not installed")


def test_shards_split_the_chunks_between_them():
    chunks = plan_chunks(1000, 700, 256, 64, (1.0, 0.5), chunk_tiles=3)
    shares = [[c.index for c in chunks if Shard(i, 3).owns(c)] for i in range(3)]
    assert sorted(sum(shares, [])) == list(range(len(chunks)))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert parse_shard("2/3") == Shard(2, 3)
    for text in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(BadShard):
            parse_shard(text)


def test_torchrun_ranks_are_shards_unless_one_is_given():
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert shard_for(None, torchrun) == Shard(3, 4)
    assert shard_for("0/2", torchrun) == Shard(0, 2)
    assert shard_for(None, {}) == Shard(0, 1) == shard_for(None, {"RANK": "0", "WORLD_SIZE": "1"})


def test_torchrun_style_processes_sharing_one_folder_merge_to_one_process(tmp_path):
    write_disc_geotiff(tmp_path / "discs.tif", 900, 700, seed=9)
    ckpt = fake_ckpt(tmp_path)
    tool = load_tool("detect_craters")
    tool.main(detect_args(tmp_path / "discs.tif", ckpt, tmp_path / "single"))
    shared, logs = tmp_path / "shared", [tmp_path / f"rank{i}.log" for i in range(2)]
    processes = [start_detection(detect_args(tmp_path / "discs.tif", ckpt, shared), log,
                                 launcher_env={"RANK": str(i), "WORLD_SIZE": "2", "LOCAL_RANK": str(i)})
                 for i, log in enumerate(logs)]
    for process, log in zip(processes, logs):
        finish(process, log)
    tool.main(["--merge", str(shared), "--out", str(shared)])
    for name in ("craters.csv", "craters.diam"):
        assert (shared / name).read_text() == (tmp_path / "single" / name).read_text(), name


def test_two_shards_merged_equal_one_process(tmp_path):
    write_disc_geotiff(tmp_path / "discs.tif", 1100, 900, seed=8)
    ckpt = fake_ckpt(tmp_path)
    tool = load_tool("detect_craters")
    tool.main(detect_args(tmp_path / "discs.tif", ckpt, tmp_path / "single"))
    shards = [tmp_path / f"shard{i}" for i in range(2)]
    logs = [tmp_path / f"shard{i}.log" for i in range(2)]
    processes = [start_detection(detect_args(tmp_path / "discs.tif", ckpt, out, ["--shard", f"{i}/2"]), log)
                 for i, (out, log) in enumerate(zip(shards, logs))]
    for process, log in zip(processes, logs):
        finish(process, log)
    assert not (shards[0] / "craters.csv").exists() and "--merge" in logs[0].read_text()
    with pytest.raises(IncompleteRun, match="chunks"):
        tool.main(["--merge", str(shards[0]), "--out", str(tmp_path / "half")])
    tool.main(["--merge", *map(str, shards), "--out", str(tmp_path / "merged")])
    for name in ("craters.csv", "craters.diam", "craters.scc"):
        assert (tmp_path / "merged" / name).read_text() == (tmp_path / "single" / name).read_text(), name
    figures = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert figures["craters"] > 20 and figures["tiles_run"] == figures["tiles"]
