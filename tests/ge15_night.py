"""A fictional night shaped like Malaysia's 15th general election (GE15, November 2022), for
the rehearsal benchmarks and the test that the same night gives the same posts.

222 single-seat contests with about 950 candidates (3 to 5 a seat), 17 snapshots over 8 hours,
and seat and candidate names of real Malay length ("P.185 Batu Sapi, Sabah", "Datuk Seri
Panglima Haji ... bin ..."). Everything is invented and marked as a test, as in
broadcaster.rehearsal.fictional, whose seats and documents it reuses. Deterministic for a seed.

    python tests/ge15_night.py FOLDER [--seats 222]      # write the snapshots
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from broadcaster.rehearsal.fictional import (
    PARTIES,
    Burst,
    NightPlan,
    Seat,
    document,
    seats,
    share_counted,
    snapshot_times,
)

STATES = [
    "Perlis", "Kedah", "Kelantan", "Terengganu", "Pulau Pinang", "Perak", "Pahang", "Selangor",
    "Wilayah Persekutuan Kuala Lumpur", "Wilayah Persekutuan Putrajaya", "Negeri Sembilan",
    "Melaka", "Johor", "Wilayah Persekutuan Labuan", "Sabah", "Sarawak",
]  # fmt: skip
PLACES = [
    "Bandar Tun Razak", "Batu Sapi", "Sungai Acheh", "Baram", "Kota Bharu", "Pasir Mas",
    "Tanjong Karang", "Kuala Selangor", "Hulu Langat", "Bukit Gantang", "Padang Rengas",
    "Kepala Batas", "Tasek Gelugor", "Permatang Pauh", "Seberang Perai", "Kinabatangan",
    "Petra Jaya", "Batang Lupar", "Sri Aman", "Kota Samarahan",
]  # fmt: skip
TITLES = ["Tan Sri Dato' Haji", "Datuk Seri Panglima Haji", "Dato' Sri Haji", "Puan Hajah",
          "Encik", "Dr.", "Tengku", "Datuk"]  # fmt: skip
GIVEN = ["Mahiaddin", "Mohd Shafie", "Razaleigh", "Ismail Sabri", "Nurul Izzah", "Rafizi",
         "Wan Azizah", "Syed Saddiq", "Hannah Yeoh", "Fadhlina", "Zahid", "Anwar"]  # fmt: skip
FATHERS = ["Md Yasin", "Haji Apdal", "Tengku Mohd Hamzah", "Yaakob", "Ibrahim", "Ramli",
           "Wan Ismail", "Abdul Rahman", "Sidek", "Hamidi"]  # fmt: skip

GE15 = NightPlan(
    seats=222,
    hours=8.0,
    step_minutes=32.0,  # 17 snapshots from 7 pm to past 3 am
    bursts=(Burst(2.0, 0.25, 30), Burst(4.0, 0.3, 30)),
    seed=15,
    title="Fictional 15th General Election (TEST)",
)


def ge15_plan(seats_count: int = 222) -> NightPlan:
    return replace(GE15, seats=seats_count)


def _seats(plan: NightPlan) -> list[Seat]:
    """fictional's seats with 3 to 5 candidates each (about 950 at 222 seats)."""
    rng = random.Random(plan.seed * 31)
    out = []
    for seat in seats(plan):
        n = rng.choices((3, 4, 5), weights=(2, 3, 4))[0]
        parties = tuple(p for p, _, _ in rng.sample(PARTIES, n))
        final = tuple(sorted((rng.randint(3000, 60000) for _ in range(n)), reverse=True))
        out.append(replace(seat, parties=parties, final=final, swing=seat.swing and n > 1))
    return out


def _names(doc: dict, rng_seed: int) -> None:
    """Real-length Malay seat and candidate names, stable per id."""
    election = doc["Election"][0]
    for i, contest in enumerate(election["Contest"]):
        place = PLACES[i % len(PLACES)]
        state = STATES[i % len(STATES)]
        contest["Name"] = f"P.{i + 1:03d} {place}, {state} (TEST)"
    for cand in election["Candidate"]:
        rng = random.Random(f"{rng_seed}:{cand['@id']}")
        name = f"{rng.choice(TITLES)} {rng.choice(GIVEN)} bin {rng.choice(FATHERS)}"
        cand["BallotName"]["Text"][0]["Content"] = name
        cand["BallotName"]["Text"][0]["Language"] = "ms"


def write_ge15(folder: Path, plan: NightPlan = GE15) -> list[Path]:
    """Write the night's snapshots into `folder`; returns their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    all_seats = _seats(plan)
    paths = []
    for n, at in enumerate(snapshot_times(plan), start=1):
        states = [(s, share_counted(s, at), at >= s.called) for s in all_seats]
        doc = document(states, at, plan.title)
        _names(doc, plan.seed)
        path = folder / f"{n:04d}-{at:%H%M}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False))
        paths.append(path)
    return paths


def rehearse_quietly(config: Any, night: Path, out: Path) -> Any:
    """Rehearse `night` into `out` (fast, an hour of tail, warnings silenced); its outbox,
    open (the caller closes it)."""
    import logging

    from broadcaster.outbox.store import Store
    from broadcaster.rehearsal.replay import rehearse

    logging.disable(logging.WARNING)
    try:
        rehearse(config, night, out, speed=None, tail=3600)
    finally:
        logging.disable(logging.NOTSET)
    return Store(f"sqlite:///{out / 'state.db'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seats", type=int, default=222)
    args = parser.parse_args()
    written = write_ge15(args.folder, ge15_plan(args.seats))
    print(f"{len(written)} snapshots written to {args.folder}")
