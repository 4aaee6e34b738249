"""Secret files written on the node, never through ``files.put``.

``files.put`` shows a file's content under ``pyinfra --diff`` (the old and the new lines), and
creates the file with the upload's default mode before its ``chmod`` (over sudo, in a world-
readable temporary file first). Here the content travels on the command's stdin (never in its
argv, never printed); on the node the file's folder is made 0700 first, the bytes go into a
``mktemp`` file (0600 from its creation, umask 077) and a rename puts it in place, so no reader
ever sees a partial file or a moment where others could read it. Unchanged content and mode add
no command: the File and Sha256File facts are compared with the content's digest.

.. code:: python

    secrets.secret_file(name="Engine env file with the API key (0600)",
                        path="/etc/ironserve/r1/secrets.env", content=env)

Always give ``name=``: without it pyinfra names an operation after its arguments.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Generator

from pyinfra.api.command import QuoteString, StringCommand
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.files import File, Sha256File

# $1: the destination. The parents come with the usual umask, the folder itself is made 0700
# before any byte exists, and the temporary file is 0600 from its creation.
WRITE_SCRIPT = (
    "set -eu; "
    'dir=$(dirname -- "$1"); '
    'mkdir -p -- "$dir"; '
    'chmod 700 -- "$dir"; '
    "umask 077; "
    'tmp=$(mktemp -- "$dir/.ironserve-secret.XXXXXX"); '
    'cat > "$tmp" || { rm -f -- "$tmp"; exit 1; }; '
    'mv -f -- "$tmp" "$1"'
)


def write_command(path: str, content: str) -> StringCommand:
    """``sh -c WRITE_SCRIPT`` for ``path``, the content on stdin."""
    return StringCommand(
        "sh", "-c", QuoteString(WRITE_SCRIPT), "ironserve-secret", QuoteString(path), _stdin=content
    )


@operation()
def secret_file(path: str, content: str) -> Generator[StringCommand | str, None, None]:
    """A 0600 file holding ``content`` at ``path``, in a 0700 folder.

    + path: the file on the node
    + content: the secret text (sent on stdin, never shown)
    """
    digest = hashlib.sha256(content.encode()).hexdigest()
    if host.get_fact(Sha256File, path=path) != digest:
        yield write_command(path, content)
        return
    info = host.get_fact(File, path=path)
    if not isinstance(info, dict) or info.get("mode") != 600:
        yield f"chmod 600 {shlex.quote(path)}"
        return
    host.noop(f"{path} holds its secret (0600)")
