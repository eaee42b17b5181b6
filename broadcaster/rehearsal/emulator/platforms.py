"""The registry: the platforms the emulator serves, one entry per platform module.

Adding a platform is adding its module (a `PLATFORM = Platform(...)`, see routing.py and the
package docstring) and one entry here. A call goes to the first platform whose `claim` matches
its path, so claims must not overlap (tests/test_emulator_platforms.py checks the registered
ones).
"""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.rehearsal.emulator import facebook, telegram, tiktok, x, youtube
from broadcaster.rehearsal.emulator.faults import Fault, parse_spec
from broadcaster.rehearsal.emulator.routing import Platform

PLATFORMS: tuple[Platform, ...] = (
    facebook.PLATFORM,
    youtube.PLATFORM,
    tiktok.PLATFORM,
    x.PLATFORM,
    telegram.PLATFORM,
)

# Each platform's random mix (bench/bench_faults.py and the docs refer to it by this name).
RANDOM_MIX: dict[str, tuple[str, ...]] = {p.name: p.faults.mix for p in PLATFORMS}


def parse_faults(spec: str, platforms: Sequence[Platform] = PLATFORMS) -> dict[str, list[Fault]]:
    """`x:429:2,tiktok:code=spam_risk_too_many_posts` -> faults per platform, in order. A
    `random=P` item comes back as a Fault of kind "random" whose `wait` holds P. ValueError,
    naming the item, when the spec is malformed."""
    return parse_spec(spec, {p.name: p.faults for p in platforms})
