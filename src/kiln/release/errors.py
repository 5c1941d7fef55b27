"""The release's refusals, typed: callers (the catalog, tests) decide by type, never by text."""

from __future__ import annotations

from kiln.errors import KilnError


class PublishError(KilnError):
    """Publishing, promoting or rolling back was refused."""


class ImmutableTagError(PublishError):
    """An immutable tag already names other content."""


class TrustError(KilnError):
    """An artifact may not be used: pull and promote refuse it. Subclasses say why."""


class NotFound(TrustError):
    """The manifest the reference names is not in the registry."""


class Unsigned(TrustError):
    """No signature by any key: the artifact was not published by kiln."""


class SignatureRefused(TrustError):
    """Signatures exist, but none is a valid one by the project's key for this digest."""


class Tampered(TrustError):
    """Signed documents and the content they describe disagree."""


class DigestMismatch(Tampered):
    """What was served or pulled is not what the signature names."""


class NotVerified(TrustError):
    """Signed, but its verification record does not show a passing run."""


class WrongKind(TrustError):
    """A container where a VM disk was asked for, or the other way round."""


class Revoked(TrustError):
    """The digest is on the project's signed revocation list."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class RolledBack(TrustError):
    """A channel document older than one already seen: a registry writer moved it back."""


class RevocationsMissing(TrustError):
    """The signed revocation list is gone or older than one already seen: fail closed."""


class TagMismatch(Tampered):
    """An immutable tag names content other than the id12 in its name says."""
