"""requirements.lock (what CI and an install for the night get) agrees with pyproject.toml:
every dependency is pinned, with hashes, at a version its declared range allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)")


def pinned() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    out: dict[str, tuple[str, int]] = {}
    name = None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = PIN.match(line)
        if m:
            name = canonicalize_name(m.group(1))
            out[name] = (m.group(2), 0)
        elif name and "--hash=sha256:" in line:
            version, hashes = out[name]
            out[name] = (version, hashes + 1)
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in ("test", "postgres"):
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_every_dependency_is_pinned_with_hashes_inside_its_declared_range():
    lock = pinned()
    assert lock, "requirements.lock has no pins"
    wrong = []
    for req in declared():
        name = canonicalize_name(req.name)
        if name not in lock:
            wrong.append(f"{req.name}: not in requirements.lock")
            continue
        version = lock[name][0]
        if not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req.name}: locked at {version}, outside {req.specifier}")
    assert not wrong, "run scripts/lock.sh:\n" + "\n".join(wrong)
    unhashed = [n for n, (_, hashes) in lock.items() if hashes == 0]
    assert not unhashed, f"pinned without a hash: {unhashed}"
