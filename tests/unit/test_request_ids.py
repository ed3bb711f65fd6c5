"""protocol/replay.py: a request id is looked at from the head and taken only once the whole
request verified (issue #22's gap: a signed head with another body burned the id)."""

import pytest

from protocol.replay import ReplayWindowFull, RequestIds
from protocol.signing import FUTURE_SKEW_S, MAX_AGE_S


def test_issue22_looking_at_a_request_id_takes_nothing() -> None:
    ids = RequestIds(since_s=0)
    assert not ids.seen("BANKAVNX", "n" * 16, now_s=100.0)
    assert not ids.seen("BANKAVNX", "n" * 16, now_s=100.0)  # still not taken
    assert ids.take("BANKAVNX", "n" * 16, now_s=100.0)
    assert ids.seen("BANKAVNX", "n" * 16, now_s=100.0)
    assert not ids.take("BANKAVNX", "n" * 16, now_s=100.0)  # its twin loses
    assert not ids.seen("BANKBVNX", "n" * 16, now_s=100.0)  # ids belong to their signer
    assert not ids.seen("BANKAVNX", "n" * 16, now_s=100.0 + MAX_AGE_S + FUTURE_SKEW_S)


def test_issue22_a_full_memory_refuses_from_the_head() -> None:
    ids = RequestIds(max_ids=1, since_s=0)
    assert ids.take("BANKAVNX", "a" * 16, now_s=1.0)
    assert ids.seen("BANKAVNX", "a" * 16, now_s=1.0)  # a replay is still told apart
    with pytest.raises(ReplayWindowFull):
        ids.seen("BANKAVNX", "b" * 16, now_s=1.0)
    with pytest.raises(ReplayWindowFull):
        ids.take("BANKAVNX", "b" * 16, now_s=1.0)
