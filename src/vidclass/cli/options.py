"""The command line's side of the declared options (vidclass.options)."""

from __future__ import annotations

import argparse
import os

from ..errors import VidclassError
from ..options import VERBS, Option


def cli_type(option: Option):
    """An argparse type that parses and checks a value as `option` declares it."""

    def parse(text: str):
        try:
            return option.parse(text)
        except VidclassError:
            raise argparse.ArgumentTypeError(option.problem(text).split(" ", 1)[1]) from None

    parse.__name__ = option.name  # argparse names the type in some messages
    return parse


def help_text(option: Option) -> str:
    """The declared help, with the default as every option here shows it."""
    if option.kind is bool or option.default is None:
        return option.help
    default = f"{option.default:g}" if isinstance(option.default, float) else option.default
    return f"{option.help} (default: {default})"


def add_option(parser, option: Option) -> None:
    """One declared option as an argument of `parser`."""
    kwargs: dict = {"dest": option.name, "help": help_text(option)}
    if option.kind is bool:
        if option.default is None:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["action"] = "store_false" if option.default else "store_true"
    else:
        kwargs.update(default=option.default, metavar=option.metavar)
        if option.choices:  # argparse's own check, which lists them
            kwargs["choices"] = option.choices
        else:
            kwargs["type"] = cli_type(option)
    parser.add_argument(*option.cli_flags, **kwargs)


def add_verb_options(parser: argparse.ArgumentParser, verb: str, skip: tuple = ()) -> None:
    """A verb's declared options (vidclass.options) but `skip`, in their declared order;
    --labels shares a group with --labels-file, which names a file of them."""
    for option in VERBS[verb].values():
        if option.name in skip:
            continue
        if option.name == "labels":
            group = parser.add_mutually_exclusive_group()
            add_option(group, option)
            group.add_argument("--labels-file", metavar="FILE", help="the same, one label a line")
        else:
            add_option(parser, option)


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("VIDCLASS_GALLERY", "gallery.sqlite"),
        help="the gallery database ($VIDCLASS_GALLERY, else ./gallery.sqlite)",
    )


def chosen_labels(args: argparse.Namespace):
    """The LabelChoice the options give, or None."""
    from ..errors import VidclassError
    from ..label_choice import LabelChoice, parse_labels, read_labels_file

    if args.labels is not None:
        names = parse_labels(args.labels)
    elif args.labels_file is not None:
        names = read_labels_file(args.labels_file)
    elif args.prompt is not None or args.multi_label or args.threshold is not None:
        raise VidclassError("--prompt, --multi-label and --threshold need --labels")
    else:
        return None
    return LabelChoice(tuple(names), args.prompt, args.multi_label, args.threshold)
