"""What a feed's `source` can name: an HTTP(S) URL, or a local file or folder of snapshots.

Kept apart from sources.py, which imports requests and urllib3: checking a configuration
(`broadcaster status`, /healthz) needs these two answers and no HTTP client.
"""

from __future__ import annotations

SNAPSHOT_SUFFIXES = (".json", ".csv", ".xml")


def is_url(value: str) -> bool:
    """Whether the feed's source is fetched over HTTP(S) rather than read from disk."""
    return value.startswith(("http://", "https://"))
