"""Alerts to the operators: when the night needs a person, say so on their phones.

The daemon calls `Alerter.run_once()` once per poll cycle. It looks at the outbox and the
night's state (posts held by a gate, a template, a card or a secret; accounts the system paused;
budgets spent long before the night's end; posts in doubt; a quiet or rejected feed; live
destinations down) through `conditions.py`, and sends each new finding to the `[[alerts]]`
destinations that want it (`destinations.py`: a Telegram chat through the Telegram publisher,
email over SMTP with STARTTLS, a JSON webhook). What was sent is recorded in the database
(`State.alert_records`), so a restart repeats nothing, and `[alerting] <kind> every` seconds
must pass before the same thing is alerted about again. Every alert says what happened, which
post or account, and the command (or console page) that resolves it; its text is masked of
every registered secret; it never goes to an `[[accounts]]` destination (checks.py).

This room sits above delivery and below runtime: it reads outbox/ and the feed's health, and
posts only through publishers/. Import from the modules (`alerter.Alerter`,
`model.standby_took_over`): `checks.py` is read with every configuration, and stays light.
"""
