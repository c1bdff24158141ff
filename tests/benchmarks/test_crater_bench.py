"""benchmarks/crater_bench.py: seeds, mean ± std, the table, failures, and two seeded CPU runs that agree."""
import json

import pytest
import torch

from tests.benchmarks.conftest import REPO, load_benchmark
from yolox.synthetic.craters import generate_synthetic_craters

NANO_EXP = str(REPO / "exps" / "crater" / "yolox_nano_crater.py")


def seed_row(seed, best50, final50, name="r"):
    return {"kind": "seed", "name": name, "seed": seed, "best_AP50": best50, "best_AP50_95": best50 / 2,
            "best_epoch": 3, "final_AP50": final50, "final_AP50_95": final50 / 2, "final_epoch": 4, "epochs": 4,
            "batch": 2, "img_per_s": 10.0 + seed, "wall_seconds": 60.0, "train_seconds": 50.0}


def test_seeds_parse_as_a_count_or_a_list():
    bench = load_benchmark("crater_bench")
    assert bench.parse_seeds("3") == [0, 1, 2]
    assert bench.parse_seeds("0,4") == [0, 4] and bench.parse_seeds("7,") == [7]
    with pytest.raises(SystemExit, match="count"):
        bench.parse_seeds("0")
    with pytest.raises(SystemExit, match="comma-separated"):
        bench.parse_seeds("a,b")


def test_summary_is_mean_and_sample_std_of_the_finished_seeds_and_names_the_failed():
    bench = load_benchmark("crater_bench")
    rows = [seed_row(0, 0.6, 0.4), seed_row(1, 0.7, 0.5),
            {"kind": "seed", "name": "r", "seed": 2, "error": "exit code 1"}]
    summary = bench.recipe_summary("r", rows)
    assert summary["seeds"] == [0, 1] and summary["failed"] == [2]
    assert summary["best_AP50"]["mean"] == pytest.approx(0.65)
    assert summary["final_AP50"]["std"] == pytest.approx(0.0707107, abs=1e-6)
    assert summary["img_per_s"]["mean"] == pytest.approx(10.5)
    table = bench.format_table(rows + [summary])
    assert "FAILED: exit code 1" in table
    assert "0.650 ± 0.071" in table and "0.450 ± 0.071" in table and "mean of 2" in table


def test_one_seed_has_zero_spread_and_all_failed_has_no_figures():
    bench = load_benchmark("crater_bench")
    assert bench.recipe_summary("r", [seed_row(0, 0.5, 0.5)])["best_AP50"] == {"mean": 0.5, "std": 0.0}
    failed = bench.recipe_summary("r", [{"kind": "seed", "name": "r", "seed": 0, "error": "x"}])
    assert failed["failed"] == [0] and "best_AP50" not in failed
    assert "FAILED" in bench.format_table([{"kind": "seed", "name": "r", "seed": 0, "error": "x"}, failed])


def test_seed_command_puts_options_before_the_overrides_and_the_seed_last():
    bench = load_benchmark("crater_bench")
    args = bench.make_parser().parse_args(["--name", "s", "--data-dir", "D", "--", "-f", "E", "max_epoch", "5"])
    command = bench.seed_command(args, 4, workers=3)
    assert command[3:] == ["-expn", "s_seed4", "--data-dir", "D", "-f", "E", "max_epoch", "5", "seed", "4",
                           "output_dir", args.output_dir, "data_num_workers", "3"]


def tiny_bench_argv(tmp_path, name, seeds="1", extra=()):
    return ["--name", name, "--seeds", seeds, "--data-dir", str(tmp_path / "data"),
            "--output-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "bench.jsonl"), "--",
            "-f", NANO_EXP, "-c", "none", "-b", "2", "--device", "cpu", *extra,
            "input_size", "(64,64)", "test_size", "(64,64)", "random_size", "(2,2)", "max_epoch", "2",
            "warmup_epochs", "1", "no_aug_epochs", "1", "eval_interval", "1", "data_num_workers", "0"]


def test_a_failing_seed_is_reported_and_the_others_are_not_stopped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bench = load_benchmark("crater_bench")
    rows = bench.main(tiny_bench_argv(tmp_path, "broken", extra=["--data-dir", str(tmp_path / "missing")]))
    assert rows[0]["error"].startswith("exit code") and rows[-1]["failed"] == [0]
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.slow  # two training processes: 3 minutes on the shared 2-core CPU
def test_two_runs_with_the_same_seed_give_the_same_ap_and_weights_on_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    generate_synthetic_craters(tmp_path / "data", num_train=8, num_val=2, img_size=64, seed=0)
    bench = load_benchmark("crater_bench")
    first = bench.main(tiny_bench_argv(tmp_path, "a"))
    second = bench.main(tiny_bench_argv(tmp_path, "b"))
    run_a, run_b = first[0], second[0]
    assert "error" not in run_a and "error" not in run_b
    for key in ("best_AP50", "best_AP50_95", "final_AP50", "final_AP50_95", "best_epoch", "final_epoch"):
        assert run_a[key] == run_b[key]
    weights_a = torch.load(tmp_path / "runs" / "a_seed0" / "last_epoch_ckpt.pth", weights_only=True)["model"]
    weights_b = torch.load(tmp_path / "runs" / "b_seed0" / "last_epoch_ckpt.pth", weights_only=True)["model"]
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    lines = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    assert [row["kind"] for row in lines] == ["seed", "summary", "seed", "summary"]
    capsys.readouterr()
    bench.main(["--summarize", str(tmp_path / "bench.jsonl")])
    table = capsys.readouterr().out
    assert "| a " in table and "| b " in table
