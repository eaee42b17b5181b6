"""The configuration as every command loads it: the file's own rules (core/config.py) and each
platform's settings, which only the platform registry knows."""

from __future__ import annotations

from pathlib import Path

from broadcaster.alerts.checks import alert_problems
from broadcaster.core.config import Config
from broadcaster.core.config import load_config as load_file
from broadcaster.publishers.registry import platforms, validate_account_settings


def platform_problems(config: Config) -> list[str]:
    """Accounts on unknown platforms or with wrong settings, and overflow policies for unknown
    platforms; each as "key: message"."""
    problems = [
        f"accounts[{i}] ({account.name}).{key}: {message}"
        for i, account in enumerate(config.accounts)
        for key, message in validate_account_settings(account)
    ]
    known = platforms()
    for key in config.templates.overflow:
        platform = key.partition("/")[0]
        if platform not in known:
            problems.append(
                f"templates.overflow.{key}: unknown platform {platform!r}; "
                f"expected one of {', '.join(known)}"
            )
    return problems


def load_config(path: Path | str | None) -> Config:
    """Read and validate a configuration file, the platforms' settings included; None means
    the bundled rehearsal configuration. ConfigError names every bad key."""
    return load_file(path, checks=(platform_problems, alert_problems))
