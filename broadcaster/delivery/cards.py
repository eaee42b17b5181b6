"""Cards for outbox rows: named by what they show, drawn once, and shared by every post (on any
account) that would show the same picture."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from broadcaster.content.cards.draw import CardStyle, card_fingerprint, card_path, render_card
from broadcaster.content.compose import locale_for
from broadcaster.content.context import shared_vars, template_vars
from broadcaster.content.samples import display_from
from broadcaster.core.config import AccountConfig, Config
from broadcaster.outbox.store import Store
from broadcaster.publishers import capabilities_for


class CardMaker:
    def __init__(self, config: Config, store: Store, folder: Path) -> None:
        self.config = config
        self.store = store
        self.folder = folder
        self.style = CardStyle.from_config(config.cards, config.base_dir)
        self.display = display_from(config)

    def card_for(self, row: Any, account: AccountConfig) -> Path:
        """The card file for an outbox row, drawing it if it does not exist yet."""
        spec = capabilities_for(account.platform).card
        if spec is None:
            raise ValueError(f"{account.platform} takes no images")
        locale = locale_for(self.config, account)
        stored = self.store.event_with_context(row.event_id)
        tz = self.config.election.timezone
        views = shared_vars(stored.shared, tz, self.display)
        variables = template_vars(stored.event, stored.context, views, timezone=tz)
        path = card_path(self.folder, card_fingerprint(variables, spec, locale, self.style), spec)
        if path.exists():
            return path
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.part{path.suffix}")
        render_card(variables, spec, locale, self.style, tmp)
        tmp.replace(path)  # never leave a half-written card where a publisher would find it
        return path
