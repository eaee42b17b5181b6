"""The configuration's rules for `[[alerts]]` that need the platforms: a Telegram destination's
settings as the Telegram publisher reads them, and never a destination that is one of the
`[[accounts]]` (alerts are for the operators, never for the public)."""

from __future__ import annotations

from broadcaster.core.config import AccountConfig, AlertDestinationConfig, Config
from broadcaster.publishers.registry import validate_account_settings


def alert_problems(config: Config) -> list[str]:
    """Problems with the alert destinations, each as "key: message"."""
    problems = []
    public = {
        str(value)
        for account in config.accounts
        for key, value in account.settings.items()
        if key in ("channel", "chat", "chat_id")
    }
    for i, dest in enumerate(config.alerts):
        where = f"alerts[{i}] ({dest.name})"
        if dest.kind == "telegram":
            problems += [
                f"{where}.{'chat' if key == 'channel' else key}: {message}"
                for key, message in validate_account_settings(alert_account(dest))
            ]
            if dest.chat in public:
                problems.append(
                    f"{where}.chat: {dest.chat} is an [[accounts]] destination; alerts go to the "
                    "operators' own private chat, never to a public account"
                )
        if dest.kind == "email" and dest.ca_file:
            path = config.path(dest.ca_file)
            if path is None or not path.is_file():
                problems.append(f"{where}.ca_file: {path} is not a file")
    return problems


def alert_account(config: AlertDestinationConfig) -> AccountConfig:
    """The Telegram publisher's settings for an alerts chat: notifications on, always."""
    settings: dict[str, object] = {
        "bot_token": config.bot_token,
        "channel": config.chat,
        "disable_notification": False,
        "timeout": config.timeout,
    }
    if config.api_base:
        settings["api_base"] = config.api_base
    return AccountConfig.model_validate(
        {"name": f"alerts-{config.name}", "platform": "telegram", "dry_run": False, **settings}
    )
