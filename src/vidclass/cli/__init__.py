"""The `vidclass` command: one small module per command family, each adding its own
options and calling the Python API; this one parses, dispatches, and turns errors into
one line."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import threading

from ..errors import VidclassError
from ..version import __version__
from . import classify, explain, gallery, info, models, sample, serve, timeline, training, watch

log = logging.getLogger("vidclass")
FAMILIES = (classify, timeline, explain, watch, training, gallery, serve, models, sample, info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidclass",
        description="Label videos offline on a CPU with a pretrained or your own model.",
    )
    parser.add_argument("--version", action="version", version=f"vidclass {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and details")
    parser.set_defaults(run=None)  # each command sets its own
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for family in FAMILIES:
        family.add(sub)
    return parser


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"vidclass: {record.levelname.lower()}: {record.getMessage()}"


# The extra that installs each optional module (pyproject.toml's optional-dependencies);
# a command that needs several names its own (`extra` in its parser's defaults).
EXTRA_OF = {
    "torch": "torch",
    "onnx": "export",
    "transformers": "hf",
    "sklearn": "train",
    "matplotlib": "plot",
    "fastapi": "serve",
    "uvicorn": "serve",
    "ray": "ray",
    "usearch": "search",
    "openvino": "openvino",
    "onnxruntime": "onnxruntime",
    "nncf": "int8",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:  # transformers' own bars and notices, for Hugging Face models
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # its retry notices
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    log.propagate = False
    try:
        if args.run is None:
            parser.print_help()
            return 2
        return args.run(args)
    except VidclassError as exc:
        if args.debug:
            raise
        log.error(str(exc))
        return 1
    except ModuleNotFoundError as exc:  # an extra this command needs is not installed
        extra = EXTRA_OF.get((exc.name or "").partition(".")[0])
        if args.debug or extra is None:
            raise
        extra = getattr(args, "extra", None) or extra  # the command's own, where it has one
        log.error(f"this needs {exc.name}, which is not installed: pip install 'vidclass[{extra}]'")
        return 1
    except KeyboardInterrupt:
        print("vidclass: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `vidclass tags | head`: the reader has gone, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # the system refused a file we write: disk full, no permission
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        log.error(f"{where}{(exc.strerror or str(exc)).lower()}")
        return 1
    finally:
        log.removeHandler(handler)


def _nothing_left_to_clean_up() -> bool:
    """No Ray (its exit hooks stop a local cluster), no other thread still running, no
    child process alive: what interpreter teardown would wait for."""
    if "ray" in sys.modules:
        return False
    main_thread = threading.main_thread()
    if any(t is not main_thread and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return False
    return not multiprocessing.active_children()


def run() -> None:
    """The console script: `main`, then exit without tearing the interpreter down where
    nothing is left to clean up (tearing down torch's modules alone takes ~0.3 s of a
    one-video run). Output is flushed and files are closed by then."""
    code = main()
    if _nothing_left_to_clean_up():
        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):
            pass
        os._exit(code)
    sys.exit(code)
