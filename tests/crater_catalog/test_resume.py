"""Killed with SIGKILL at random moments and run again each time, detection ends with the catalogue of an
uninterrupted run, row for row; --restart starts over; another job's records are refused."""
import random
import signal
import time

import pytest

from tests.crater_catalog.runs import detect_args, fake_ckpt, finish, start_detection, write_disc_geotiff
from tests.tools.conftest import load_tool
from yolox.crater_catalog.parts import RunMismatch
from yolox.utils.user_errors import run_cli

pytest.importorskip("rasterio", reason="the geo extra (pip install -e '.[geo]') is not installed")

CATALOGUE_FILES = ("craters.csv", "craters.diam", "craters.scc", "craters.geojson")
DELAY_S = 0.03      # per tile: about a second of detection on the 42-tile mosaic


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    write_disc_geotiff(root / "discs.tif", 1400, 1100)
    ckpt = fake_ckpt(root)
    reference = root / "reference"
    load_tool("detect_craters").main(detect_args(root / "discs.tif", ckpt, reference))
    return root, ckpt, reference


def records(out):
    return len(list((out / "parts").glob("chunk_*.npz")))


def kill_and_resume(root, ckpt, out, kills: int, seed: int) -> int:
    """Run, SIGKILL once a random number of chunks is recorded (plus a random fraction of a chunk), repeat;
    then run to the end. Returns how many kills landed before the run ended."""
    rng = random.Random(seed)
    log = out.parent / f"{out.name}.log"
    total = len(list((root / "reference" / "parts").glob("chunk_*.npz")))
    targets = sorted(rng.sample(range(1, total - 1), kills))
    landed = 0
    for target in targets:
        process = start_detection(detect_args(root / "discs.tif", ckpt, out), log, DELAY_S)
        while process.poll() is None and (not (out / "parts").exists() or records(out) < target):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, DELAY_S))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            landed += 1
        process.wait()
    finish(start_detection(detect_args(root / "discs.tif", ckpt, out), log), log)
    return landed


def assert_same_catalogue(out, reference):
    for name in CATALOGUE_FILES:
        assert (out / name).read_text() == (reference / name).read_text(), name


def test_three_kills_resume_to_the_same_catalogue(mosaic):
    root, ckpt, reference = mosaic
    out = root / "killed3"
    assert kill_and_resume(root, ckpt, out, kills=3, seed=1) == 3
    assert_same_catalogue(out, reference)


@pytest.mark.slow
def test_ten_kills_resume_to_the_same_catalogue(mosaic):
    root, ckpt, reference = mosaic
    out = root / "killed10"
    assert kill_and_resume(root, ckpt, out, kills=10, seed=2) == 10
    assert_same_catalogue(out, reference)


def test_a_finished_run_run_again_detects_nothing_new(mosaic, caplog):
    root, ckpt, reference = mosaic
    before = {p.name: p.stat().st_mtime_ns for p in (reference / "parts").iterdir()}
    load_tool("detect_craters").main(detect_args(root / "discs.tif", ckpt, reference))
    assert {p.name: p.stat().st_mtime_ns for p in (reference / "parts").iterdir()} == before


def test_restart_starts_over_and_another_job_is_refused(mosaic, capsys):
    root, ckpt, reference = mosaic
    out = root / "restart"
    tool = load_tool("detect_craters")
    tool.main(detect_args(root / "discs.tif", ckpt, out))
    stale = out / "parts" / "chunk_999999.npz"
    stale.write_bytes(b"")
    with pytest.raises(RunMismatch, match="--restart"):
        tool.main(detect_args(root / "discs.tif", ckpt, out, ["--overlap", "96"]))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run_cli(lambda: tool.main(detect_args(root / "discs.tif", ckpt, out, ["--conf", "0.6"])))
    message = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and "\n" not in message and "model" in message and "--restart" in message
    tool.main(detect_args(root / "discs.tif", ckpt, out, ["--overlap", "96", "--restart"]))
    assert not stale.exists() and (out / "craters.csv").exists()
