"""Accounts: checking and authorising them."""

from __future__ import annotations

from pathlib import Path

import click

from broadcaster.cli.app import (
    EXIT_CONFIG,
    acting,
    config_option,
    err,
    load_config_or_exit,
    main,
    open_store,
    out,
    store_for,
)
from broadcaster.core.terminal import safe
from broadcaster.publishers.registry import real_platforms


@main.command()
@config_option
def doctor(config_path: Path | None) -> None:
    """Check every account's credentials, permissions and target; one line each."""
    from broadcaster.core.clock import WallClock
    from broadcaster.core.secrets import SecretError
    from broadcaster.delivery.dispatcher import publisher_env
    from broadcaster.publishers import PublishError, publisher_class

    config, store = open_store(config_path)
    env = publisher_env(config, store, WallClock(), Path(config.output.posts))
    failures = 0
    try:
        for account in config.accounts:
            label = f"{account.name} ({account.platform})"
            if account.dry_run or account.platform == "dryrun":
                out.print(f"[dim]--[/] {label}: dry run, not checked against the platform")
                continue
            try:
                line = publisher_class(account.platform).doctor(account, env)
            except NotImplementedError as exc:
                line = str(exc)
            except (PublishError, SecretError) as exc:
                failures += 1
                out.print(f"[red]FAIL[/] {label}: {type(exc).__name__}: {safe(exc)}")
                continue
            out.print(f"[green]ok[/]   {label}: {safe(line)}")
    finally:
        store.close()
    raise SystemExit(1 if failures else 0)


@main.command()
@click.argument("platform", type=click.Choice(real_platforms()))
@click.option(
    "--account", "account_name", default=None, help="The account (default: the only one)."
)
@config_option
def auth(platform: str, account_name: str | None, config_path: Path | None) -> None:
    """Authorise an account and keep its tokens in the token store."""
    from broadcaster.core.clock import WallClock
    from broadcaster.core.secrets import SecretError
    from broadcaster.delivery.dispatcher import publisher_env
    from broadcaster.publishers import PublishError, publisher_class

    config = load_config_or_exit(config_path)
    candidates = [
        a
        for a in config.accounts
        if a.platform == platform and (account_name is None or a.name == account_name)
    ]
    if len(candidates) != 1:
        err.print(f"[red]name one {platform} account with --account (found {len(candidates)})[/]")
        raise SystemExit(EXIT_CONFIG)
    account = candidates[0]
    store = store_for(config)
    env = publisher_env(config, store, WallClock(), Path(config.output.posts))

    def prompt(text: str, hide: bool = False) -> str:
        return str(click.prompt(text, hide_input=hide))

    try:
        tokens = publisher_class(platform).authorize(account, env, prompt)
        if tokens:
            assert env.tokens is not None
            env.tokens.put(account.name, tokens)
            out.print(f"tokens for {account.name} saved in {env.tokens.path}")
        from broadcaster.outbox.operations import resume

        resume(store, [account.name], actor=acting(), why="re-authorised")
    except (PublishError, SecretError, NotImplementedError) as exc:
        err.print(f"[red]{account.name}: {safe(exc)}[/]")
        raise SystemExit(1) from None
    finally:
        store.close()


# -- the outbox and the accounts, while the daemon runs ------------------------------------------
