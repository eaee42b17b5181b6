"""Templates compiled once per process, whatever the number of environments.

Every account's renderer has its own sandboxed environment (its own filters, in its locale), and
a template edit makes new ones, so the same file used to be parsed and compiled once per account
at start and again for each check: most of a rehearsal's start-up. Compiling is a pure function
of the source text and the environment's compile-time settings, so the compiled code object (never
changed once made) is shared through Jinja's own bytecode-cache hook, kept in memory only: nothing
compiled is ever read back from disk, where it could be swapped for code that skips the sandbox.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from jinja2 import Environment, meta
from jinja2.bccache import Bucket, BytecodeCache

MAX_ENTRIES = 1024  # distinct (settings, template, version) kept; edits add one each


def settings_of(env: Environment) -> Hashable:
    """What compiling depends on besides the source: the environment's class (it brings the
    code generator), its syntax, and the filter and test names (an unknown one is a compile
    error) with what each is passed first (the context, the evaluation context or the
    environment: fixed in the compiled code). Environments alike in these compile any source
    to the same code."""
    return (
        type(env),
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
        env.optimized,
        env.autoescape if isinstance(env.autoescape, bool) else id(env.autoescape),
        env.finalize,
        _with_pass_arg(env.filters),
        _with_pass_arg(env.tests),
        tuple(sorted(env.extensions)),
    )


def _with_pass_arg(functions: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    """Each name with the first argument Jinja passes its function, if any (`pass_context`
    and the like mark it on the function; the sandbox's wrapping keeps the mark)."""
    return frozenset(
        (name, getattr(func, "jinja_pass_arg", None)) for name, func in functions.items()
    )


class CompiledTemplates(BytecodeCache):
    """Jinja's bytecode-cache hook backed by a bounded in-memory map. Jinja checks the
    source's checksum itself, so an edited file is compiled afresh."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._code: OrderedDict[tuple[Hashable, str, str], CodeType] = OrderedDict()
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: Bucket) -> None:
        key = (settings_of(bucket.environment), bucket.key, bucket.checksum)
        with self._lock:
            code = self._code.get(key)
            if code is not None:
                self._code.move_to_end(key)
        if code is not None:
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is None:
            return
        key = (settings_of(bucket.environment), bucket.key, bucket.checksum)
        with self._lock:
            self._code[key] = bucket.code
            while len(self._code) > self.max_entries:
                self._code.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._code.clear()


# One per process: every renderer's environments share it.
COMPILED = CompiledTemplates()


@dataclass(frozen=True, slots=True)
class Facts:
    """What `reads_variable` needs from one template source: the variables it looks up and
    the templates it names (None for one named at render time)."""

    undeclared: frozenset[str]
    referenced: tuple[str | None, ...]


_facts: OrderedDict[tuple[Hashable, str], Facts] = OrderedDict()
_facts_lock = threading.Lock()


def template_facts(env: Environment, source: str, name: str) -> Facts:
    """The variables `source` looks up and the templates it refers to, parsed once per process
    for a given text and syntax. Raises what parsing raises."""
    key = (settings_of(env), source)
    with _facts_lock:
        found = _facts.get(key)
    if found is not None:
        return found
    ast = env.parse(source, name)
    facts = Facts(
        frozenset(meta.find_undeclared_variables(ast)),
        tuple(meta.find_referenced_templates(ast)),
    )
    with _facts_lock:
        _facts[key] = facts
        while len(_facts) > MAX_ENTRIES:
            _facts.popitem(last=False)
    return facts
