"""Ordered platform answers over `responses`: each request, whatever its address, gets the next
answer, and every request is recorded, as googleapiclient's HttpMockSequence did when YouTube
spoke httplib2 (it speaks requests now, see broadcaster/publishers/youtube.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import responses

EVERYTHING = re.compile(r"https?://.*")
Answer = tuple[dict[str, str], str]  # headers (with "status"), body


def ok(body: dict[str, Any]) -> Answer:
    return {"status": "200", "content-type": "application/json"}, json.dumps(body)


def failure(status: int, reason: str) -> Answer:
    """A Google API error of this HTTP status and reason."""
    body = {"error": {"code": status, "message": reason, "errors": [{"reason": reason}]}}
    return {"status": str(status), "content-type": "application/json"}, json.dumps(body)


TOKEN = ok({"access_token": "ya29.fresh-access", "expires_in": 3599, "token_type": "Bearer"})


class Sequence:
    """Answers in order; `request_sequence` holds (url, method, body, headers) of each call."""

    def __init__(self, mock: responses.RequestsMock, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.request_sequence: list[tuple[str, str, Any, dict[str, str]]] = []
        for method in ("GET", "POST", "PUT", "DELETE"):
            mock.add_callback(method, EVERYTHING, callback=self._answer)

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")  # an upload's bytes are not text
        self.request_sequence.append((request.url, request.method, body, dict(request.headers)))
        if not self.answers:
            raise AssertionError(f"no answer left for {request.method} {request.url}")
        headers, text = self.answers.pop(0)
        status = int(headers.get("status", "200"))
        return status, {k: v for k, v in headers.items() if k != "status"}, text
