"""accepts_keyword: what an exp method overridden with upstream's narrower signature can take."""
from yolox.utils.compat import accepts_keyword


def upstream(batch_size, is_distributed, **kwargs):
    return batch_size, is_distributed, kwargs


def ours(batch_size, is_distributed, policy=None):
    return batch_size, is_distributed, policy


def test_a_bare_kwargs_does_not_count_as_taking_a_keyword():
    # it may hand the keyword on to a function that does not take it
    assert accepts_keyword(ours, "policy") and not accepts_keyword(upstream, "policy")
    assert accepts_keyword(upstream, "is_distributed")
