"""Signed tokens in the links of sent emails: open pixel, click redirect, unsubscribe.

A token carries only ids (the message, the link's number); the URL a click goes to is the
one recorded on the message at send time, so a forged or altered token can never redirect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous import Signer as ItsdangerousSigner

SALTS = {"open": "nurture.open", "click": "nurture.click", "unsubscribe": "nurture.unsubscribe"}
"""One salt per purpose: a token made for one purpose is refused for every other."""

MAX_TOKEN_LENGTH = 200
"""Longer tokens are refused before any signature work."""


class _DerivedOnce(ItsdangerousSigner):
    """itsdangerous's signer, its key derived once rather than at every signature (the
    derivation is a pure function of the salt and the secret: the same key, the same
    tokens). Its digest is `hashlib.sha1` itself rather than itsdangerous's lazy wrapper of
    it, the same algorithm, so that `hmac` takes OpenSSL's HMAC instead of its Python one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key = super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        if secret_key is None:
            return self._key
        return super().derive_key(secret_key)


SIGNER_KWARGS = {"digest_method": hashlib.sha1}
"""SHA-1, as itsdangerous's default (tokens already sent keep working)."""


@dataclass(frozen=True)
class Signer:
    secret_key: str
    _serializers: dict[str, URLSafeSerializer] = field(
        init=False, repr=False, compare=False, default_factory=dict)
    _signers: dict[str, ItsdangerousSigner] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        """One per purpose, made once: sending signs several tokens for every email."""
        serializer = self._serializers.get(purpose)
        if serializer is None:
            serializer = self._serializers[purpose] = URLSafeSerializer(
                self.secret_key, salt=SALTS[purpose], signer=_DerivedOnce,
                signer_kwargs=SIGNER_KWARGS)
        return serializer

    def _dumps(self, purpose: str, value: object) -> str:
        """`URLSafeSerializer.dumps`, with its signer made once rather than for each token."""
        serializer = self._serializer(purpose)
        signer = self._signers.get(purpose)
        if signer is None:
            signer = self._signers[purpose] = serializer.make_signer(serializer.salt)
        return signer.sign(serializer.dump_payload(value)).decode("utf-8")

    def open_token(self, message_id: int) -> str:
        return self._dumps("open", message_id)

    def click_token(self, message_id: int, link: int) -> str:
        return self._dumps("click", [message_id, link])

    def unsubscribe_token(self, message_id: int) -> str:
        return self._dumps("unsubscribe", message_id)

    def read_open(self, token: str) -> int | None:
        value = self._load("open", token)
        return value if _is_id(value) else None

    def read_click(self, token: str) -> tuple[int, int] | None:
        value = self._load("click", token)
        if isinstance(value, list) and len(value) == 2 and all(_is_id(v, 0) for v in value):
            return value[0], value[1]
        return None

    def read_unsubscribe(self, token: str) -> int | None:
        value = self._load("unsubscribe", token)
        return value if _is_id(value) else None

    def _load(self, purpose: str, token: str) -> object:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            return self._serializer(purpose).loads(token)
        except BadSignature:
            return None


def _is_id(value: object, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value < 2**63
