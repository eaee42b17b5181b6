"""A platform's posting limit as a sliding window: at most `posts` posts in any `seconds`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Window(BaseModel):
    """At most `posts` posts in any `seconds` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    posts: int = Field(ge=0)
    seconds: int = Field(gt=0)
