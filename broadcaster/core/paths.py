"""Where the bundled files are, in an installed package and in a source checkout alike."""

from __future__ import annotations

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
