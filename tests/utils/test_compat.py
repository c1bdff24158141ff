"""call_with_supported: keywords reach only the functions that name them."""
from yolox.utils.compat import accepts_keyword, call_with_supported


def upstream(batch_size, is_distributed, **kwargs):
    return batch_size, is_distributed, kwargs


def ours(batch_size, is_distributed, policy=None):
    return batch_size, is_distributed, policy


def test_optional_keywords_go_only_where_they_are_named():
    assert call_with_supported(ours, 8, False, optional={"policy": "p"}) == (8, False, "p")
    # a bare **kwargs does not count for optional keywords (it may hand one on to a function that does not
    # take it); the other keywords always go
    assert call_with_supported(upstream, 8, is_distributed=False, optional={"policy": "p"}, testdev=True) == (
        8, False, {"testdev": True})
    assert accepts_keyword(ours, "policy") and not accepts_keyword(upstream, "policy")
