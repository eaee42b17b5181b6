"""After a correction is sent: link it to the post it corrects, and edit or delete that one
where the account asks and the platform allows."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from broadcaster.core.config import AccountConfig
from broadcaster.outbox.store import Store
from broadcaster.publishers import capabilities_for
from broadcaster.publishers.base import PublishedRef, Publisher, PublishError

log = logging.getLogger(__name__)


def after_correction(
    store: Store, account: AccountConfig, row: Any, publisher: Publisher, now: datetime
) -> None:
    """`row`: the correction just sent. Failures to edit or delete are logged, never raised:
    the correction itself is out."""
    old = store.earlier_post(row.account, row.contest_id, before_id=row.id)
    if old is None:
        return
    store.set_corrects(row.id, old.id)
    caps = capabilities_for(account.platform)
    action = account.on_correction
    if action == "post" or not old.platform_post_id:
        return
    ref = PublishedRef(old.platform_post_id, old.sent_at or now, old.platform_url)
    try:
        if action == "edit" and caps.can_edit:
            publisher.edit(ref, row.text or "")
            log.info("edited post %d after its correction %d", old.id, row.id)
        elif action == "delete" and caps.can_delete:
            publisher.delete(ref)
            store.mark_failed(old.id, f"deleted: corrected by post {row.id}")
            log.info("deleted post %d after its correction %d", old.id, row.id)
    except (PublishError, NotImplementedError) as exc:
        log.warning("could not %s post %d after its correction: %s", action, old.id, exc)
