"""Counting template renders in tests (issue 13's render-once and render-when-sent tests)."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster.content.render import Renderer


def count_renders(monkeypatch: pytest.MonkeyPatch, renderer: Renderer | None = None) -> list[str]:
    """The names of the templates rendered from now on, by `renderer` or else by any, one per
    render; the renders of the templates' own checks (sample contexts, account "lint") are
    left out."""
    names: list[str] = []
    target: Any = renderer if renderer is not None else Renderer
    original = target.render_template

    def counted(*args: Any) -> str:
        template, variables = args[-2], args[-1]
        if (variables.get("account") or {}).get("name") != "lint":
            names.append(template.name)
        return str(original(*args))

    monkeypatch.setattr(target, "render_template", counted)
    return names
