"""Every verb's options, declared once: type, default, bounds and help.

The CLI's parsers (cli/options.py), the server's query parameters (serve/params.py),
the live WebSocket's query and the Python verbs all check values against these
declarations, so a bound cannot differ between them (tests/test_options.py walks
each surface).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..label_choice import as_choice
from .common import DEFAULT_MOMENT, ENGINES
from .option import Option
from .verbs import VERBS

__all__ = ["DEFAULT_MOMENT", "ENGINES", "VERBS", "Option", "check", "option", "parse_query"]


def option(verb: str, name: str) -> Option:
    return VERBS[verb][name]


def check(verb: str, arguments: Mapping[str, object]) -> None:
    """Check a Python verb's arguments (its `locals()` on entry) against the verb's
    declared options; arguments that are not options (paths, callbacks) pass."""
    declared = VERBS[verb]
    for name, value in arguments.items():
        if name not in declared:
            continue
        if name == "labels" and value is not None and not isinstance(value, str):
            # Python also takes names or a LabelChoice: its parts are these options too
            choice = as_choice(value)
            declared["prompt"].check(choice.prompt)
            declared["threshold"].check(choice.threshold)
            continue
        declared[name].check(value)


def parse_query(verb: str, query: Mapping[str, str], names: tuple[str, ...]) -> dict:
    """The `names` options of `verb` from a query string (the live WebSocket's), each
    checked; missing ones take their default."""
    declared = VERBS[verb]
    return {
        name: declared[name].default
        if query.get(name) is None
        else declared[name].parse(query[name])
        for name in names
    }
