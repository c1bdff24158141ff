"""benchmarks/user_clock.py against stand-ins of both commands: the commands as typed, the figures read from
their outputs, the table and the JSON, failures and the deadline; nothing is trained."""
import json
import sys
import time

import pytest

from tests.benchmarks.conftest import REPO, load_benchmark
from tests.benchmarks.test_coco_subset import write_coco_set

STAND_INS = REPO / "tests" / "benchmarks" / "stand_ins"


def parse_table(table):
    """{(tool, seed): {header: cell}} of a markdown table."""
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    return {(cells[0], cells[1]): dict(zip(header, cells)) for cells in rows}


@pytest.fixture
def clock(tmp_path, monkeypatch):
    """user_clock with the peer's /tmp scratch folders moved under tmp_path (the stand-in peer writes there)."""
    module = load_benchmark("user_clock")
    monkeypatch.setattr(module, "PEER_SCRATCH", tmp_path / "scratch")
    monkeypatch.setenv("STAND_IN_SCRATCH", str(tmp_path / "scratch"))
    write_coco_set(tmp_path / "data")
    return module


def argv(tmp_path, *more):
    return ["--data", str(tmp_path / "data"), "--command", f"{sys.executable} {STAND_INS / 'crater_command.py'}",
            "--peer-script", str(STAND_INS / "peer.py"), "--out", str(tmp_path / "out"), "--time", "90s", *more]


def test_both_tools_run_per_seed_as_typed_and_the_table_and_json_hold_their_figures(tmp_path, clock, capsys):
    rows = clock.main(argv(tmp_path, "--seeds", "0,1", "--subset", "4", "--imgsz", "64", "--device", "cuda",
                           "--extra=-b 8 max_epoch 5"))
    assert [(row["tool"], row["seed"], row["status"]) for row in rows] == [
        ("yolox", 0, "ok"), ("ultralytics", 0, "ok"), ("yolox", 1, "ok"), ("ultralytics", 1, "ok")]
    out = tmp_path / "out"
    subset = str(out / "subset_4")
    ours = json.loads((out / "runs" / "user_clock_s1" / "argv.json").read_text())
    assert ours == ["--data-dir", subset, "--time", "90s", "--device", "cuda", "-expn", "user_clock_s1", "-b", "8",
                    "max_epoch", "5", "input_size", "64,64", "test_size", "64,64", "seed", "1",
                    "output_dir", str(out / "runs")]
    peer = json.loads((out / "peer" / "argv_s1.json").read_text())
    assert peer == {"data": subset, "out": str(out / "peer"), "model": "yolo11s.yaml", "device": "0", "epochs": 1000,
                    "batch": 16, "imgsz": 64, "seed": 1, "time": 1.5}
    yolox, peer_row = rows[2], rows[3]
    assert (yolox["final_AP50"], yolox["best_AP50"], yolox["epochs"]) == (pytest.approx(0.31), pytest.approx(0.21), 2)
    assert yolox["budget_s"] == 1.0 and 0.1 <= yolox["wall_s"] < 60
    assert yolox["img_per_s"] == round(40 / yolox["wall_s"], 1)
    assert yolox["phases_s"] == {"startup": 6.0, "train_steps": 40.0}
    assert (peer_row["best_AP50"], peer_row["epochs"], peer_row["images"]) == (pytest.approx(0.41), 3, 12)
    assert "final_AP50" not in peer_row and "phases_s" not in peer_row
    saved = json.loads((out / "user_clock.json").read_text())
    assert saved["rows"] == rows
    assert saved["summary"][0]["final_AP50"]["mean"] == pytest.approx(0.305)
    printed = capsys.readouterr().out
    table = printed[printed.index("| tool"):].strip()
    lines = parse_table(table)
    mean = lines["yolox", "mean of 2"]
    assert (mean["AP50 final"], mean["AP50 best"], mean["epochs"]) == ("0.305 ± 0.007", "0.205 ± 0.007", "2 ± 0")
    assert (mean["startup s"], mean["train steps s"], mean["data wait s"]) == ("5.5 ± 0.7", "40.0 ± 0.0", "-")
    assert lines["ultralytics", "1"]["budget s"] == "90" and lines["ultralytics", "1"]["AP50 final"] == "-"
    assert lines["ultralytics", "1"]["AP50 best"] == "0.410" and lines["ultralytics", "1"]["epochs"] == "3"
    assert (out / "user_clock.md").read_text().strip() == table
    clock.main(["--summarize", str(out / "user_clock.json")])
    assert capsys.readouterr().out.strip() == table


def test_a_failed_seed_is_named_and_left_out_of_the_means(tmp_path, clock, capsys, monkeypatch):
    monkeypatch.setenv("STAND_IN_FAIL_SEED", "1")
    rows = clock.main(argv(tmp_path, "--seeds", "0,1", "--no-peer"))
    assert rows[1]["status"] == "failed" and rows[1]["note"].startswith("exit code 3; see ")
    summary = clock.tool_summary("yolox", rows)
    assert summary["seeds"] == [0] and summary["not_ok"] == [1] and summary["final_AP50"]["mean"] == 0.3
    assert "not finished: seeds 1" in capsys.readouterr().out


def test_at_the_deadline_a_run_is_stopped_the_next_not_started_and_the_table_printed(tmp_path, clock, capsys,
                                                                                     monkeypatch):
    monkeypatch.setenv("STAND_IN_SLEEP", "60")
    monkeypatch.setattr(clock, "STOP_RESERVE_S", 1.0)
    started = time.monotonic()
    rows = clock.main(argv(tmp_path, "--seeds", "0,1", "--no-peer", "--time", "1s", "--deadline", "3"))
    assert time.monotonic() - started < 10
    assert [row["status"] for row in rows] == ["cut off", "not run"]
    assert 1.5 < rows[0]["wall_s"] < 5 and "wall_s" not in rows[1]
    out = capsys.readouterr().out
    assert "stopped at the deadline" in out and "mean of 0" in out and "not finished: seeds 0, 1" in out


def test_arguments_that_cannot_work_are_one_line_errors(tmp_path, clock):
    with pytest.raises(SystemExit, match="--imgsz: give the size both tools train at"):
        clock.main(argv(tmp_path))
    with pytest.raises(SystemExit, match="--data .*missing: no such folder"):
        clock.main(argv(tmp_path, "--no-peer", "--data", str(tmp_path / "missing")))
    with pytest.raises(SystemExit, match="--peer-script .*: not found"):
        clock.main(argv(tmp_path, "--imgsz", "64", "--peer-script", str(tmp_path / "nope.py")))


def test_our_device_names_become_the_peers():
    clock = load_benchmark("user_clock")
    assert [clock.peer_device(device) for device in (None, "auto", "cuda", "cuda:1", "cpu", "mps")] == [
        None, None, "0", "1", "cpu", "mps"]


def test_parallel_runs_start_together_and_say_they_shared_the_machine(tmp_path, clock):
    started = time.monotonic()
    rows = clock.main(argv(tmp_path, "--seeds", "0,1", "--imgsz", "64", "--parallel"))
    assert sorted((row["tool"], row["seed"], row["status"]) for row in rows) == [
        ("ultralytics", 0, "ok"), ("ultralytics", 1, "ok"), ("yolox", 0, "ok"), ("yolox", 1, "ok")]
    assert all(row["note"].startswith("4 runs sharing the machine") for row in rows)
    # the four stand-ins overlapped: together they took less than one after another
    assert time.monotonic() - started < sum(row["wall_s"] for row in rows)
