"""yolox.utils.eval_history: rows kept in order, stale rows dropped, best and final picked."""
import pytest

from tests.conftest import loguru_messages
from yolox.utils import eval_history
from yolox.utils.eval_history import append_eval, best_and_final, read_eval_history, reset_eval_history


def row(epoch, ap50_95, best):
    return {"epoch": epoch, "AP50": 2 * ap50_95, "AP50:95": ap50_95, "best": best}


def test_best_is_the_last_flagged_row_and_final_the_last(tmp_path):
    for item in (row(5, 0.2, True), row(10, 0.3, True), row(15, 0.25, False)):
        append_eval(str(tmp_path), item)
    picked = best_and_final(read_eval_history(str(tmp_path)))
    assert picked["best"]["epoch"] == 10 and picked["final"]["epoch"] == 15
    assert best_and_final([]) is None
    assert best_and_final([row(1, 0.1, False), row(2, 0.4, False), row(3, 0.2, False)])["best"]["epoch"] == 2


def test_reset_keeps_rows_up_to_the_resume_epoch(tmp_path):
    for epoch in (5, 10, 15):
        append_eval(str(tmp_path), row(epoch, 0.1, False))
    reset_eval_history(str(tmp_path), keep_through_epoch=10)
    assert [item["epoch"] for item in read_eval_history(str(tmp_path))] == [5, 10]
    reset_eval_history(str(tmp_path))
    assert read_eval_history(str(tmp_path)) == []


def test_a_corrupt_line_names_the_file(tmp_path):
    (tmp_path / "eval_history.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(ValueError, match="eval_history.jsonl line 2"):
        read_eval_history(str(tmp_path))


def test_a_row_cut_short_by_a_kill_is_dropped_and_the_run_resumes(tmp_path):
    (tmp_path / "eval_history.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "AP')
    with loguru_messages("WARNING") as warnings:
        assert [item["epoch"] for item in read_eval_history(str(tmp_path))] == [1, 2]
    assert len(warnings) == 1 and "unfinished last line" in warnings[0]
    reset_eval_history(str(tmp_path), keep_through_epoch=2)
    append_eval(str(tmp_path), row(3, 0.1, False))
    assert [item["epoch"] for item in read_eval_history(str(tmp_path))] == [1, 2, 3]
    # a complete last row without its newline (written by hand) is kept
    (tmp_path / "eval_history.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}')
    assert [item["epoch"] for item in read_eval_history(str(tmp_path))] == [1, 2]


def test_a_reset_that_fails_midway_keeps_the_old_rows(tmp_path, monkeypatch):
    for epoch in (1, 2, 3):
        append_eval(str(tmp_path), row(epoch, 0.1, False))

    def dumps_then_fail(value):
        if value["epoch"] == 2:
            raise OSError("disk full")
        return eval_history.json.JSONEncoder().encode(value)

    monkeypatch.setattr(eval_history.json, "dumps", dumps_then_fail)
    with pytest.raises(OSError):
        reset_eval_history(str(tmp_path), keep_through_epoch=2)
    monkeypatch.undo()
    assert [item["epoch"] for item in read_eval_history(str(tmp_path))] == [1, 2, 3]
    assert [path.name for path in tmp_path.iterdir()] == ["eval_history.jsonl"]
