"""Each verb's options are declared once (vidclass.options): these tests walk every
surface (the command line, the HTTP query parameters, the live WebSocket's query, the
Python verbs) and check each against the declaration, so they cannot drift apart."""

from __future__ import annotations

import argparse
import inspect
import math

import pytest

import vidclass
from vidclass.errors import VidclassError
from vidclass.options import VERBS, Option

# The command each verb is on.
COMMANDS = {
    "classify": ["classify"],
    "timeline": ["timeline"],
    "explain": ["explain"],
    "watch": ["watch"],
    "index": ["index"],
    "search": ["search"],
    "similar": ["similar"],
    "train": ["train"],
    "evaluate": ["evaluate"],
    "calibrate": ["calibrate"],
    "export": ["models", "export"],
    "serve": ["serve"],
}
# Declared options a command does not take, and why.
NOT_ON_THE_COMMAND_LINE = {
    # the command asks for the session's segments always; its own --segments says
    # whether to print them
    ("watch", "segments"),
}
# Arguments only a command has: what it prints or writes, files it reads, positionals.
COMMAND_ONLY = {
    "help",
    "videos",
    "video",
    "source",
    "folders",
    "text",
    "data",
    "name",
    "format",
    "output",
    "plot",
    "segments",  # timeline: print segments rather than windows
    "show_segments",
    "labels_file",
    "input_option",
    "db",
    "report",
    "plots",
    "out",
    "val",
    "calibrate",
    "api_key",
    "model",  # evaluate's MODEL, a positional
}


def _numbers_around(option: Option) -> tuple[list, list]:
    """Values the declaration accepts (its bounds) and values just outside them."""
    step = 1 if option.kind is int else 1e-6
    inside, outside = [], [math.nan, math.inf] if option.kind is float else []
    if option.ge is not None:
        inside.append(option.kind(option.ge))
        outside.append(option.kind(option.ge - step))
    if option.gt is not None:
        inside.append(option.gt + step)
        outside.append(option.kind(option.gt))
    if option.le is not None:
        inside.append(option.kind(option.le))
        outside.append(option.le + step)
    if not inside:
        inside.append(option.kind(7))
    return inside, outside


def _texts_around(option: Option) -> tuple[list, list]:
    if option.choices:
        return list(option.choices), ["nonsense", option.choices[0].upper() + "x"]
    inside, outside = ["x"], [""]
    if option.max_chars:
        inside.append("x" * option.max_chars)
        outside.append("x" * (option.max_chars + 1))
    return inside, outside


def around(option: Option) -> tuple[list, list]:
    if option.kind is bool:
        return [True, False], [1, "yes"]
    if option.kind is str:
        return _texts_around(option)
    return _numbers_around(option)


def _subcommand(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.fixture(scope="module")
def parser():
    from vidclass.cli import build_parser

    return build_parser()


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_each_command_takes_its_verbs_options_as_declared(parser, verb):
    command = _subcommand(parser, COMMANDS[verb])
    actions = {a.dest: a for a in command._actions}
    for name, option in VERBS[verb].items():
        if (verb, name) in NOT_ON_THE_COMMAND_LINE:
            assert name not in actions, f"{verb}: {name} is on the command after all"
            continue
        action = actions.get(name)
        assert action is not None, f"{verb}: --{name} is declared but not on the command"
        assert tuple(action.option_strings)[: len(option.cli_flags)] == option.cli_flags
        assert action.help.startswith(option.help), (verb, name)
        if option.kind is bool:
            expected = {None: None, False: False, True: True}[option.default]
            assert action.default == expected, (verb, name)
            continue
        assert action.default == option.default, (verb, name)
        if option.choices:  # argparse checks the choices
            assert tuple(action.choices) == option.choices and action.type is None
            continue
        inside, outside = around(option)
        for value in inside:
            assert action.type(str(value)) == value, (verb, name, value)
        for value in outside:
            with pytest.raises(argparse.ArgumentTypeError, match=r"must be"):
                action.type(str(value))
    undeclared = {
        a.dest for a in command._actions if a.dest not in VERBS[verb] and a.dest not in COMMAND_ONLY
    }
    assert not undeclared, f"{verb}: options not declared in vidclass.options: {undeclared}"


def test_a_command_refuses_a_value_out_of_bounds_with_the_declared_words(parser, capsys):
    with pytest.raises(SystemExit):
        parser.parse_args(["timeline", "v.mp4", "--window", "61"])
    assert "argument --window: must be a number more than 0 and at most 60" in (
        capsys.readouterr().err
    )


# The endpoints each verb is served by, and their parameters that are not options.
ENDPOINTS = {
    ("/v1/classify", "post"): "classify",
    ("/v1/timeline", "post"): "timeline",
    ("/v1/search", "get"): "search",
    ("/v1/similar", "get"): "similar",
    ("/v1/similar", "post"): "similar",
    ("/v1/gallery/videos", "get"): "browse",
}
NOT_OPTIONS = {"progress", "q", "video"}


@pytest.fixture(scope="module")
def openapi():
    pytest.importorskip("fastapi", reason="needs the serve extra")
    from fastapi import FastAPI

    from vidclass.serve.routes import browse, gallery, videos

    app = FastAPI()
    app.include_router(videos.router, prefix="/v1")
    app.include_router(gallery.router, prefix="/v1")
    app.include_router(browse.router, prefix="/v1")
    return app.openapi()


def _schema(parameter: dict) -> dict:
    schema = dict(parameter["schema"])
    for alternative in schema.pop("anyOf", []):
        if alternative.get("type") != "null":
            schema.update(alternative)
    return schema


@pytest.mark.parametrize(("path", "method"), sorted(ENDPOINTS))
def test_each_endpoint_bounds_its_query_as_declared(openapi, path, method):
    verb = ENDPOINTS[path, method]
    parameters = openapi["paths"][path][method]["parameters"]
    kinds = {int: "integer", float: "number", str: "string", bool: "boolean"}
    seen = set()
    for parameter in parameters:
        name = parameter["name"]
        if name in NOT_OPTIONS:
            continue
        option = VERBS[verb].get(name)
        assert option is not None, f"{path}: {name} is not declared for {verb}"
        seen.add(name)
        schema = _schema(parameter)
        assert schema["type"] == kinds[option.kind], (path, name)
        assert schema.get("default") == option.default, (path, name)
        assert parameter["description"] == option.help, (path, name)
        assert schema.get("minimum") == option.ge, (path, name)
        assert schema.get("exclusiveMinimum") == option.gt, (path, name)
        assert schema.get("maximum") == option.le, (path, name)
        if option.kind is str:
            assert schema.get("maxLength") == option.max_chars, (path, name)
            if option.choices:
                assert schema["pattern"] == "^(" + "|".join(option.choices) + ")$"
    assert seen, f"{path} has no declared options"


def test_the_live_socket_reads_its_query_as_declared():
    pytest.importorskip("fastapi", reason="needs the serve extra")
    from vidclass.serve.live import QUERY, LiveParams, Refused

    defaults = LiveParams.parse({})
    for name in QUERY:
        option = VERBS["watch"][name]
        if name not in ("labels", "prompt", "multi_label", "threshold"):
            assert getattr(defaults, name) == option.default, name
        inside, outside = around(option)
        base = {"labels": "a, b"} if name != "labels" else {}
        for value in inside if name != "labels" else ["x"]:
            text = str(value).lower() if option.kind is bool else str(value)
            parsed = LiveParams.parse({**base, name: text})
            if name != "labels" and hasattr(parsed, name):
                assert getattr(parsed, name) == value, (name, value)
        for value in outside if option.kind is not bool else ["maybe", "2"]:
            with pytest.raises(Refused, match=name):
                LiveParams.parse({**base, name: str(value)})


def _python_verbs(tmp_path):
    """(verb, a function, a call of it with the given options that checks them before
    any work)."""
    from vidclass.classifier import Classifier
    from vidclass.gallery import Gallery
    from vidclass.live import LiveSession
    from vidclass.runtimes.export import export
    from vidclass.serve.state import ServeConfig
    from vidclass.timelines import compute
    from vidclass.training import calibrate, evaluate, train

    gallery = Gallery(tmp_path / "g.sqlite")
    missing = str(tmp_path / "missing.mp4")
    out = str(tmp_path / "out")
    return [
        ("classify", vidclass.classify, lambda **o: vidclass.classify(missing, **o)),
        ("classify", vidclass.classify_batch, lambda **o: vidclass.classify_batch([missing], **o)),
        ("classify", Classifier.classify, None),
        ("timeline", vidclass.timeline, lambda **o: vidclass.timeline(missing, **o)),
        ("timeline", Classifier.timeline, None),
        ("timeline", compute, None),
        (
            "explain",
            vidclass.explain,
            lambda **o: vidclass.explain(o.pop("model", vidclass.DEFAULT_MODEL), missing, **o),
        ),
        ("watch", vidclass.watch, lambda **o: vidclass.watch(missing, **o)),
        ("watch", LiveSession.__init__, None),
        ("index", Gallery.index, lambda **o: gallery.index([missing], **o)),
        ("search", Gallery.search, lambda **o: gallery.search("words", **o)),
        ("browse", Gallery.browse, lambda **o: gallery.browse(**o)),
        ("similar", Gallery.similar, lambda **o: gallery.similar(missing, **o)),
        ("train", train, lambda **o: train(missing, out, **o)),
        ("evaluate", evaluate, lambda **o: evaluate("model", missing, **o)),
        ("calibrate", calibrate, lambda **o: calibrate("model", missing, out, **o)),
        ("export", export, lambda **o: export("model", out, **o)),
        ("serve", ServeConfig, lambda **o: ServeConfig(**{"model": "m", **o})),
    ]


def test_each_python_verb_takes_the_declared_defaults_and_bounds(tmp_path):
    pytest.importorskip("fastapi", reason="needs the serve extra")
    pytest.importorskip("torch", reason="export and train need torch")
    covered = {verb: set() for verb in VERBS}
    for verb, function, call in _python_verbs(tmp_path):
        declared = VERBS[verb]
        parameters = inspect.signature(function).parameters
        for name, parameter in parameters.items():
            option = declared.get(name)
            if option is None:
                continue
            covered[verb].add(name)
            if parameter.default is inspect.Parameter.empty:
                continue
            assert parameter.default == option.default, (verb, function.__qualname__, name)
            if call is None:
                continue
            for value in around(option)[1]:
                with pytest.raises(VidclassError, match=f"^{name} must be"):
                    call(**{name: value})
    # every declared option reaches a Python verb (the label fields as a LabelChoice)
    for verb, names in covered.items():
        left = set(VERBS[verb]) - names - {"labels", "prompt", "multi_label"}
        left -= {"threshold"} if "labels" in VERBS[verb] else set()
        assert left == NOT_IN_PYTHON.get(verb, set()), verb


# Declared options no Python verb takes, and why.
NOT_IN_PYTHON = {
    # the command listens (uvicorn) on --host and --port, and loads the model it serves
    # with vidclass.load_model(..., threads=)
    "serve": {"host", "port", "threads"},
}


def test_label_fields_given_to_python_are_bounded_as_declared(tmp_path):
    from vidclass import LabelChoice

    with pytest.raises(VidclassError, match="^threshold must be"):
        vidclass.classify(tmp_path / "x.mp4", labels=LabelChoice(("a",), threshold=2.0))
    with pytest.raises(VidclassError, match="^prompt must be"):
        vidclass.classify(tmp_path / "x.mp4", labels=LabelChoice(("a",), prompt="x" * 201))


def test_a_path_names_a_model_as_its_text_does(tmp_path):
    from vidclass.options import check

    check("classify", {"model": tmp_path / "my_model"})
    with pytest.raises(VidclassError, match="^model must be"):
        check("classify", {"model": 3})


def test_a_python_timeline_takes_stride_none_as_the_default():
    stride = VERBS["timeline"]["stride"]
    assert stride.check(None) is None and stride.default == 1.0


def test_hidden_without_an_mlp_head_is_an_error_not_a_linear_head(tmp_path):
    pytest.importorskip("torch", reason="train needs torch")
    from vidclass.training import train

    with pytest.raises(VidclassError, match="give head='mlp' too"):
        train(tmp_path / "data", tmp_path / "out", hidden=64)
