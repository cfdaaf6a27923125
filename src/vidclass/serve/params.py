"""The server's side of the declared options (vidclass.options): a query parameter
bounded and described as its declaration says, so FastAPI checks it and the OpenAPI
schema shows it."""

from __future__ import annotations

import re

from fastapi import Query

from ..options import VERBS


def query(verb: str, name: str, default=...):
    """`Query(...)` for option `name` of `verb`; `default`: where the endpoint's own
    differs from the verb's (None: the verb decides, as for an omitted argument)."""
    option = VERBS[verb][name]
    bounds: dict = {"description": option.help}
    if option.kind in (int, float):
        bounds.update(ge=option.ge, gt=option.gt, le=option.le)
        if option.kind is float:
            bounds["allow_inf_nan"] = False
    elif option.kind is str:
        bounds.update(min_length=1, max_length=option.max_chars)
        if option.choices:
            bounds["pattern"] = "^(" + "|".join(map(re.escape, option.choices)) + ")$"
    return Query(option.default if default is ... else default, **bounds)
