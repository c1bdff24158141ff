"""benchmarks/debug_nonfinite.py names the first layer whose output, then whose gradient, is non-finite."""
import torch

from tests.benchmarks.conftest import load_benchmark


class Overflow(torch.nn.Module):
    """exp() of large inputs: finite input, infinite output, as fp16 box sizes overflow."""

    def forward(self, x):
        return torch.exp(x * 100)


def test_watch_reports_the_first_non_finite_forward_and_gradient():
    tool = load_benchmark("debug_nonfinite")
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), Overflow(), torch.nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    watch = tool.NonFiniteWatch(model)
    model(torch.full((1, 2), 10.0)).sum().backward()
    assert "forward output of 1 non-finite" in watch.first["forward output"]
    assert "gradient of" in watch.first["gradient"]
    assert "forward output of 0" not in watch.first["forward output"]


def test_watch_stays_silent_on_a_finite_step():
    tool = load_benchmark("debug_nonfinite")
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.SiLU(), torch.nn.Linear(2, 1))
    watch = tool.NonFiniteWatch(model)
    model(torch.ones(3, 2)).sum().backward()
    assert watch.first == {}
