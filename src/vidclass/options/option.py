"""One declared option: its type, default, bounds and help, and the checks every
surface makes with it (vidclass.options)."""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, replace

from ..errors import VidclassError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_KINDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _number(x: float) -> str:
    """A bound as a person writes it: 4294967295, not 4.29497e+09; 0.04 as it is."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Option:
    """One option of a verb. `ge`/`gt` and `le` bound numbers; `choices` and `max_chars`
    bound text; a default of None means "not given" (the verb decides)."""

    name: str
    kind: type
    default: object = None
    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    max_chars: int | None = None
    flags: tuple[str, ...] = ()  # on the command line; else --name-with-dashes
    metavar: str | None = None
    none_means: str | None = None  # what None means to a Python verb, where it may be given

    def but(self, **changes) -> Option:
        """This option with another default or help, as one verb means it."""
        return replace(self, **changes)

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.name.replace("_", "-"),)

    def need(self) -> str:
        """What a value must be, in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is str:
            return f"text of 1 to {self.max_chars} characters" if self.max_chars else "text"
        text = _KINDS[self.kind]
        low = self.ge if self.ge is not None else self.gt
        if low is not None and self.le is not None:
            if self.gt is None:
                return f"{text} from {_number(low)} to {_number(self.le)}"
            return f"{text} more than {_number(low)} and at most {_number(self.le)}"
        if self.ge is not None:
            return f"{text} of at least {_number(self.ge)}"
        if self.gt is not None:
            return f"{text} more than {_number(self.gt)}"
        if self.le is not None:
            return f"{text} of at most {_number(self.le)}"
        return "a finite number" if self.kind is float else text

    def problem(self, value) -> str:
        given = repr(value[:40]) if isinstance(value, str) else repr(value)[:40]
        return f"{self.name} must be {self.need()}, got {given}"

    def check(self, value):
        """`value` as given to a Python verb, or VidclassError saying what it must be.
        None is accepted where the default is None or `none_means` says what it does."""
        if value is None and (self.default is None or self.none_means):
            return None
        if not self._fits(value):
            raise VidclassError(self.problem(value))
        return value

    def parse(self, text: str):
        """A value from text (a command line, a query string), checked."""
        try:
            value = self._convert(text)
        except (ValueError, OverflowError):
            raise VidclassError(self.problem(text)) from None
        if not self._fits(value):
            raise VidclassError(self.problem(text))
        return value

    def _convert(self, text: str):
        if len(text) > (self.max_chars or 40) and self.kind is not str:
            raise ValueError(text)
        if self.kind is bool:
            lowered = text.lower()
            if lowered in _TRUE + _FALSE:
                return lowered in _TRUE
            raise ValueError(text)
        return self.kind(text)

    def _fits(self, value) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            if isinstance(value, os.PathLike):  # a model or gallery named by a Path
                value = os.fspath(value)
            return (
                isinstance(value, str)
                and len(value) >= 1
                and (self.max_chars is None or len(value) <= self.max_chars)
                and (not self.choices or value in self.choices)
            )
        if isinstance(value, bool) or not isinstance(
            value, numbers.Integral if self.kind is int else numbers.Real
        ):
            return False
        if not math.isfinite(value):
            return False
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
        )
