"""Downloads that reach their final path only once verified on the node: an installer by its
sha256, a repository key by its OpenPGP fingerprint. The file is fetched beside its destination
(``<dest>.part``), checked there, and moved into place only when it matches; a mismatch removes
the partial file and fails the operation naming the artifact, so the operations after it (the
install) never run and a tampered file is never left where an installer would find it.

.. code:: python

    download.verified(name="Download the Vastai driver installer", src=url, dest=path,
                      sha256=sums["driver"][version], artifact="vastai_driver_install_3.3.0.run",
                      mode="0755")
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra.api.facts import FactBase
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.files import File, Sha256File


def fingerprint_command(path: str) -> str:
    """Shell printing the primary key fingerprint of the OpenPGP key file at ``path``."""
    return (
        f"gpg --batch --show-keys --with-colons {shlex.quote(path)} 2>/dev/null"
        " | awk -F: '$1 == \"fpr\" { print $10; exit }'"
    )


class KeyFingerprint(FactBase[str | None]):
    """The primary key's fingerprint (40 upper-case hex digits) of an OpenPGP key file, as gpg
    lists it; None when the file is absent or holds no key.

    .. code:: python

        "EB693B3035CD5710E231E123A4B469963BF863CC"
    """

    def command(self, path: str) -> str:
        return f"test -f {shlex.quote(path)} && {fingerprint_command(path)} || true"

    def process(self, output: list[str]) -> str | None:
        text = "".join(output).strip().upper()
        return text or None


def _fetch(src: str, part: str) -> str:
    s, p = shlex.quote(src), shlex.quote(part)
    return (
        f"if command -v curl >/dev/null 2>&1; then curl -sSLf {s} -o {p}; "
        f"else wget -q {s} -O {p}; fi"
    )


def verify_script(
    src: str,
    dest: str,
    artifact: str,
    sha256: str | None = None,
    fingerprint: str | None = None,
    mode: str | None = None,
) -> str:
    """Shell that fetches ``src`` to ``<dest>.part``, checks it (sha256 or key fingerprint),
    then moves it to ``dest``; on a mismatch it removes the part file and exits 1 naming the
    artifact, the URL and both values."""
    if (sha256 is None) == (fingerprint is None):
        raise ValueError("verify by exactly one of sha256 or fingerprint")
    part = f"{dest}.part"
    p, d = shlex.quote(part), shlex.quote(dest)
    if sha256 is not None:
        what, want = "sha256", sha256.lower()
        got = f"$(sha256sum {p} | cut -d' ' -f1)"
    else:
        what, want = "key fingerprint", str(fingerprint).upper()
        got = f"$({fingerprint_command(part)})"
    refused = shlex.quote(f"{artifact}: refused, nothing installed: the {what} of {src} is ")
    expected = shlex.quote(f", expected {want} (a tampered or wrong file)")
    failed = shlex.quote(f"{artifact}: could not download {src}")
    steps = [
        f"mkdir -p {shlex.quote(dest.rsplit('/', 1)[0] or '/')}",
        f"rm -f {p}",
        f"{{ {_fetch(src, part)}; }} || {{ rm -f {p}; echo {failed} >&2; exit 1; }}",
        f'got="{got}"',
        f'if [ "$got" != {shlex.quote(want)} ]; then rm -f {p}; '
        f'echo {refused}"${{got:-none}}"{expected} >&2; exit 1; fi',
    ]
    if mode:
        steps.append(f"chmod {shlex.quote(mode)} {p}")
    steps.append(f"mv -f {p} {d}")
    return "; ".join(steps)


def _mode_of(info: Any) -> str | None:
    mode = info.get("mode") if isinstance(info, dict) else None
    return None if mode is None else str(mode)


@operation()
def verified(
    src: str,
    dest: str,
    artifact: str,
    sha256: str | None = None,
    fingerprint: str | None = None,
    mode: str | None = None,
) -> Generator[str, None, None]:
    """Download ``src`` to ``dest`` unless ``dest`` already holds the verified file.

    + src: the URL
    + dest: the path on the node
    + artifact: what it is, for the error (an installer's file name, a key's name)
    + sha256: the file's expected sha256 (installers)
    + fingerprint: the expected primary key fingerprint (an OpenPGP key file)
    + mode: the file's mode once in place (``0755`` for an installer)
    """
    if (sha256 is None) == (fingerprint is None):
        raise ValueError(f"{artifact}: verify by exactly one of sha256 or fingerprint")
    if sha256 is not None:
        current = host.get_fact(Sha256File, path=dest)
        matches = current is not None and current.lower() == sha256.lower()
    else:
        current = host.get_fact(KeyFingerprint, path=dest)
        matches = current is not None and current == str(fingerprint).upper()
    if not matches:
        yield verify_script(src, dest, artifact, sha256, fingerprint, mode)
        return
    want_mode = mode.lstrip("0") if mode else None
    if want_mode and _mode_of(host.get_fact(File, path=dest)) != want_mode:
        yield f"chmod {shlex.quote(mode or '')} {shlex.quote(dest)}"
        return
    host.noop(f"{dest} is the verified {artifact}")
