"""Cards for outbox rows: named by what they show, drawn once, and shared by every post (on any
account) that would show the same picture.

Drawing a card takes tens of milliseconds (Pillow, then PNG encoding), so the dispatcher asks
for the cards of the posts it will most likely send (calls, corrections, majorities) as soon
as they are queued (`prefetch`): a pool of worker processes draws them while it goes on, each
worker reading the event from the database itself. A send then finds its card drawn, waits
for the worker already drawing it, or draws it itself; a worker that fails or dies only means
the card is drawn in the dispatcher's process, where an error is handled as before.

A worker never outlives the process that made its pool. Killed outright (SIGKILL, the OOM
killer), that process cannot stop the pool, and a pool's worker never notices its parent is
gone (it holds both ends of its own task queue). So each worker is handed the read end of a
pipe whose only write end stays in that process, and leaves when that end closes, however
the process ended.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from broadcaster.content.cards.draw import CardStyle, card_fingerprint, card_path, render_card
from broadcaster.content.compose import locale_for
from broadcaster.content.context import shared_vars, template_vars
from broadcaster.content.samples import display_from
from broadcaster.core.config import AccountConfig, Config
from broadcaster.outbox.store import Store
from broadcaster.publishers import capabilities_for

log = logging.getLogger(__name__)

IN_FLIGHT = 64  # cards asked of the workers and not yet collected, at most
WAIT = 60.0  # seconds a send waits for a worker's card before drawing it itself
PART = ".part"  # marks a card being drawn: swapped in under its own name once whole


def default_workers(cores: int | None = None) -> int:
    """Two workers on two to four usable cores, one per core beyond two above that (at most
    four); none on one core. On the 2-core machine, bench/bench_rehearse.py's GE15-sized night
    with cards took 14.0 s with none, 13.3 s with one, 11.4 s with two and 13.9 s with three;
    two hold about 235 MB together (`cores`: those this process may use, unless given)."""
    cores = cores if cores is not None else _usable_cores()
    if cores < 2:
        return 0
    return min(4, max(2, cores - 2))


def being_drawn(path: Path) -> bool:
    """Whether a file of the cards folder is a card still being drawn (or left by a drawer
    killed mid-card): never a post's picture."""
    return f"{PART}." in path.name


def _usable_cores() -> int:
    """The cores this process may run on (its affinity, a container's cpuset), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 2


class CardMaker:
    def __init__(
        self, config: Config, store: Store, folder: Path, *, workers: int | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.folder = folder
        self.style = CardStyle.from_config(config.cards, config.base_dir)
        self.display = display_from(config)
        if workers is None:
            workers = config.cards.workers
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._alive: Connection | None = None  # the write end the workers watch (never written)
        self._drawing: dict[tuple[int, str], Future[str]] = {}
        # A worker has drawn a card: the pool's processes are up. Before that, a card the pool
        # calls "running" may only be queued for workers still starting (a second or more).
        self._warm = False

    def card_for(self, row: Any, account: AccountConfig) -> Path:
        """The card file for an outbox row, drawing it if it does not exist yet (or waiting
        for the worker that is drawing it)."""
        future = self._drawing.pop((row.event_id, account.name), None)
        # A card still waiting its turn in the pool is drawn here at once rather than after
        # the others; one a worker is drawing is nearly done. Until the workers are up, the
        # night's first cards are drawn here (a worker may draw the same file too: each
        # drawer swaps in its own copy).
        if future is not None and not future.cancel() and (self._warm or future.done()):
            try:
                drawn = Path(future.result(timeout=WAIT))
                if drawn.exists():
                    return drawn
            except Exception as exc:  # drawn here instead, where its error is handled as before
                log.warning(
                    "a card worker failed (%s: %s); drawing it here", type(exc).__name__, exc
                )
                if isinstance(exc, BrokenProcessPool):
                    self._shutdown()
        return self.draw(row.event_id, account)

    def draw(self, event_id: int, account: AccountConfig) -> Path:
        """The card of an event for an account, drawn unless its file exists."""
        spec = capabilities_for(account.platform).card
        if spec is None:
            raise ValueError(f"{account.platform} takes no images")
        locale = locale_for(self.config, account)
        stored = self.store.event_with_context(event_id)
        tz = self.config.election.timezone
        views = shared_vars(stored.shared, tz, self.display)
        variables = template_vars(stored.event, stored.context, views, timezone=tz)
        path = card_path(self.folder, card_fingerprint(variables, spec, locale, self.style), spec)
        if path.exists():
            return path
        # Never leave a half-written card where a publisher would find it; two drawers of the
        # same card (a worker and a send) each write their own file and swap it in.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{PART}{path.suffix}")
        render_card(variables, spec, locale, self.style, tmp)
        tmp.replace(path)
        return path

    # -- drawing ahead, in worker processes --

    def prefetch(self, event_id: int, account: AccountConfig) -> None:
        """Start drawing the card of a post that will likely be sent; never raises."""
        key = (event_id, account.name)
        if self.workers <= 0 or key in self._drawing:
            return
        if capabilities_for(account.platform).card is None:
            return
        if len(self._drawing) >= IN_FLIGHT:
            for done in [k for k, f in self._drawing.items() if f.done()]:
                del self._drawing[done]
            if len(self._drawing) >= IN_FLIGHT:
                return  # busy: this one is drawn when it is sent
        try:
            future = self._workers().submit(_draw_in_worker, event_id, account.name)
            future.add_done_callback(self._answered)
            self._drawing[key] = future
        except Exception as exc:  # a pool that cannot start: cards are drawn at send time
            log.warning("cards cannot be drawn ahead: %s", exc)
            self.workers = 0

    def _answered(self, future: Future[str]) -> None:
        # In the pool's own thread: only ever sets the flag.
        if not future.cancelled() and future.exception() is None:
            self._warm = True

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: workers start from a clean process, not a fork of a threaded daemon.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
            # Workers start when asked for, so the read end stays here too (reading nothing):
            # each worker gets its own copy, and only this process has the write end.
            watched, self._alive = context.Pipe(duplex=False)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(self.config, self.store.url, self.folder, watched),
            )
        return self._pool

    def _shutdown(self) -> None:
        pool, self._pool = self._pool, None
        alive, self._alive = self._alive, None
        self._drawing.clear()
        self._warm = False
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if alive is not None:
            alive.close()

    def close(self) -> None:
        """Stop the workers (cards being drawn are finished, those waiting are dropped)."""
        self._shutdown()


_maker: CardMaker | None = None  # in a worker process
_accounts: dict[str, AccountConfig] = {}


def _start_worker(config: Config, url: str, folder: Path, watched: Connection) -> None:
    global _maker, _accounts
    # Ctrl-C reaches the whole process group: the daemon stops its pool itself, and a worker
    # interrupted mid-card would hand the KeyboardInterrupt to the send waiting for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_leave_with_maker, args=(watched,), daemon=True).start()
    _maker = CardMaker(config, Store(url), folder, workers=0)
    _accounts = {a.name: a for a in config.accounts}


def _leave_with_maker(watched: Connection) -> None:
    """In a worker: wait until the process that made the pool is gone (the pipe's only write
    end is closed: nothing is ever sent on it), then leave at once."""
    with contextlib.suppress(EOFError, OSError):
        watched.recv_bytes()
    os._exit(0)


def _draw_in_worker(event_id: int, account: str) -> str:
    assert _maker is not None
    return str(_maker.draw(event_id, _accounts[account]))
