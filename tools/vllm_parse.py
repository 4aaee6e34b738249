"""Parse `vllm serve` command lines with the installed vLLM's own parser.

Run with a Python where vLLM is importable (the lab's real vLLM image has it)::

    echo '[["serve", "/models/m", "--tensor-parallel-size", "2"]]' | python3 tools/vllm_parse.py

Reads a JSON list of argv lists (each starting with ``serve``, as after ``vllm``) on stdin and
prints one JSON list: per argv, ``{"ok": true}`` or ``{"ok": false, "error": "<argparse's
message>"}``. The parser is built as `vllm serve` builds it (tools/flag_table.py), so an option
the release does not accept fails here exactly as it would on a node. Parsing only: the model is
not loaded, so rules that need its config (heads, layers) are the planner's to check.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flag_table import build_vllm_parser


def parse_all(argvs: list[list[str]]) -> list[dict[str, object]]:
    parser = build_vllm_parser()
    results: list[dict[str, object]] = []
    for argv in argvs:
        if argv[:1] != ["serve"]:
            results.append({"ok": False, "error": f"not a `vllm serve` argv: {argv[:2]}"})
            continue
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                parser.parse_args(argv[1:])
        except SystemExit as exit_:
            message = stderr.getvalue().strip().splitlines()
            results.append({"ok": False, "error": message[-1] if message else f"exit {exit_}"})
            continue
        results.append({"ok": True})
    return results


def main() -> int:
    print(json.dumps(parse_all(json.load(sys.stdin))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
