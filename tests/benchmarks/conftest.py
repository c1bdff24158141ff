import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"


def load_benchmark(name: str):
    """Import benchmarks/<name>.py as a module (benchmarks/ is scripts, not a package)."""
    # a script's own folder is on sys.path when it runs, so it imports its neighbours by name: the same here
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
