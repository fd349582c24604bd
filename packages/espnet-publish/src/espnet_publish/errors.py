"""The one exception type raised by ``espnet_publish`` for problems a user can fix."""

from __future__ import annotations

__all__ = ["PublishError"]


class PublishError(RuntimeError):
    """A publishing step cannot go on; the message names the file, key or value and the fix.

    Raised for invalid model folders, manifest mismatches, missing Hugging Face tokens,
    malformed repository ids and failed uploads. Network and file-system exceptions that
    carry more detail are chained as ``__cause__``.
    """
