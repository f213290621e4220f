"""Tracking tokens: made the way itsdangerous makes them, so every link already sent still works."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from nurture.tracking.tokens import SALTS, Signer

IDS = st.integers(min_value=1, max_value=2**63 - 1)
KEY = "tokens-test-secret-key-0123456789abcdef"


@given(IDS, st.integers(min_value=0, max_value=500))
def test_tokens_are_the_serializers_own_and_read_back(message_id, link):
    signer = Signer(KEY)

    def serializer(purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(KEY, salt=SALTS[purpose])

    assert signer.open_token(message_id) == serializer("open").dumps(message_id)
    assert signer.unsubscribe_token(message_id) == serializer("unsubscribe").dumps(message_id)
    assert signer.click_token(message_id, link) == serializer("click").dumps([message_id, link])
    assert signer.read_open(signer.open_token(message_id)) == message_id
    assert signer.read_click(signer.click_token(message_id, link)) == (message_id, link)
    assert signer.read_unsubscribe(signer.open_token(message_id)) is None  # another purpose
    # a token itsdangerous made with its defaults (every link already sent) reads back
    assert signer.read_click(serializer("click").dumps([message_id, link])) == (message_id, link)
