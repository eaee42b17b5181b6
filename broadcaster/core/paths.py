"""Where the bundled files are, in an installed package and in a source checkout alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _templates_dir() -> Path:
    # An installed wheel carries the top-level templates/ folder as broadcaster/templates;
    # an editable install or a plain checkout finds it beside the package.
    installed = PACKAGE_DIR / "templates"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "templates"


DEFAULT_TEMPLATES = _templates_dir()
DEMO_DIR = PACKAGE_DIR / "rehearsal" / "demo"
DEMO_SNAPSHOTS = DEMO_DIR / "snapshots"
DEFAULT_CONFIG = DEMO_DIR / "rehearsal.toml"
# `[database] url` when a configuration names none.
DEFAULT_DATABASE_URL = "sqlite:///broadcaster.db"


def resolve_database_url(url: str, base_dir: Path) -> str:
    """A SQLite URL with a relative file made absolute against `base_dir` (the configuration
    file's folder); any other URL as it is."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        relative = Path(url[len(prefix) :]).expanduser()
        return prefix + str(relative if relative.is_absolute() else base_dir / relative)
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path.startswith(":memory:"):
        return None
    return Path(path)


def config_digest(raw: bytes) -> str:
    """A configuration file's bytes, digested: how a running daemon and a command tell that
    they read the same file (runtime/status_socket.py)."""
    return hashlib.sha256(raw).hexdigest()
