"""The value types of inventory and role data: each key's type and range, checked before any SSH.

Values end up in paths on nodes, container and shell command lines, YAML and authorized_keys
lines; each type admits only what its use can carry safely, so a bad value stops at validation
(exit 2, naming host and key) instead of reaching a node:

- node paths are absolute and normalised, of a conservative character set (no ``..``, no ``:``
  or ``,`` of a Docker volume spec, no whitespace or quote);
- names (serving groups, inventory hosts, NICs, HCAs, users) are ``[A-Za-z0-9._-]``, never only
  dots, never an option (``-x``);
- served names, revisions and versions are letters, digits and ``._-/:``, starting with a letter
  or digit; model ids are hub repo ids (``org/name``);
- ports are 1024-65535 and integers, not booleans; counts are integers, not booleans; booleans
  are booleans, not integers;
- URLs are http(s) with a host; images are Docker references (distribution's grammar);
- control-machine files that must exist are regular files;
- bandwidths and sizes are human strings with a unit (``10Gbit/s``, ``1.25GB/s``, ``12GB``),
  read by :func:`bytes_per_second` and :func:`size_bytes` (pydantic's ``ByteSize`` units).

Every type keeps the value as written (a ``str``), so what reaches the Plan is unchanged.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, ByteSize, Field, Strict

# Characters a node path may hold: enough for any sane folder, nothing a shell, a Docker volume
# spec (``src:dst:opts``) or a YAML line would read as syntax.
_PATH_CHARS = re.compile(r"^[A-Za-z0-9._/@+-]+$")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$")
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SIZE = re.compile(r"^[0-9]+[bkmgBKMG]?$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# A pyinfra connector prefix on a host name: ``@local``, ``@docker/<id>``, ``@fake/<name>``.
_CONNECTOR = re.compile(r"^@[a-z][a-z0-9_]*(?:/|$)")

# Docker image references (github.com/distribution/reference, regexp.go), digests sha256 only.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)

MAX_NAME = 64
MAX_TEXT = 256


def _no_controls(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("holds a control character (a newline?)")
    return value


def node_path(value: str) -> str:
    """An absolute, normalised path on a node."""
    _no_controls(value)
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path (start it with /)")
    if not _PATH_CHARS.fullmatch(value):
        raise ValueError(
            f"{value!r}: a node path holds only letters, digits and ._/@+- (no :, comma, space "
            "or quote)"
        )
    if posixpath.normpath(value) != value or value.startswith("//"):
        raise ValueError(
            f"{value!r} is not a normalised path (no '.', '..', '//' or trailing '/': "
            f"{posixpath.normpath(value)!r}?)"
        )
    return value


def name(value: str) -> str:
    """A group, NIC, HCA or similar name: ``[A-Za-z0-9._-]``, not only dots, not an option."""
    _no_controls(value)
    if not _NAME.fullmatch(value) or set(value) == {"."} or value.startswith("-"):
        raise ValueError(
            f"{value!r}: a name holds only letters, digits and ._- (not only dots, not "
            "starting with -)"
        )
    if len(value) > MAX_NAME:
        raise ValueError(f"{value!r}: longer than {MAX_NAME} characters")
    return value


def host_name(value: str) -> str:
    """An inventory host's name: a :func:`name`, behind a pyinfra connector prefix where there is
    one (``@local``, ``@docker/<id>``)."""
    rest = _CONNECTOR.sub("", value, count=1)
    if rest or not value.startswith("@"):
        name(rest)
    return value


def safe_text(value: str) -> str:
    """A served name, revision or version: letters, digits and ``._-/:``, starting with a letter
    or digit (never read as an option)."""
    _no_controls(value)
    if not _SAFE.fullmatch(value):
        raise ValueError(
            f"{value!r}: holds only letters, digits and ._-/: and starts with a letter or digit"
        )
    if len(value) > MAX_TEXT:
        raise ValueError(f"{value!r}: longer than {MAX_TEXT} characters")
    return value


def repo_id(value: str) -> str:
    """A hub repository id: ``name`` or ``org/name``, each part a :data:`_REPO_PART`."""
    _no_controls(value)
    parts = value.split("/")
    if len(parts) > 2 or not all(_REPO_PART.fullmatch(p) and set(p) != {"."} for p in parts):
        raise ValueError(f"{value!r} is not a hub repository id (org/name)")
    return value


def user(value: str) -> str:
    _no_controls(value)
    if not _USER.fullmatch(value) or len(value) > 32:
        raise ValueError(f"{value!r} is not a user name ([A-Za-z_][A-Za-z0-9_-]*)")
    return value


def url(value: str) -> str:
    """An http(s) URL with a host (parsed, kept as written)."""
    _no_controls(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError as error:
        raise ValueError(f"{value!r} is not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    return value


def image(value: str) -> str:
    """A container image reference as Docker parses it (``[registry/]name[:tag][@sha256:...]``)."""
    _no_controls(value)
    if not _IMAGE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an image reference ([registry[:port]/]name[:tag][@sha256:...])"
        )
    return value


def docker_size(value: str) -> str:
    """A size as Docker reads it (``--shm-size 32g``): digits and an optional unit."""
    _no_controls(value)
    if not _SIZE.fullmatch(value):
        raise ValueError(f"{value!r} is not a size (digits and b, k, m or g: 32g)")
    return value


# A number and a unit, with an optional "/s" or "ps" (10Gbit/s, 1.25GB/s, 400MiB/s, 10Gbps).
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]+?)(/s|ps)?$")
# Below 1 Mbit/s or above 10 Tbit/s a bandwidth is a typo (a missing unit prefix, a digit too
# many), not a link; 1 MB to 1 TB holds any engine image.
MIN_BANDWIDTH = 125_000  # bytes per second: 1 Mbit/s
MAX_BANDWIDTH = 1_250_000_000_000  # 10 Tbit/s
MIN_SIZE, MAX_SIZE = 10**6, 10**12


def _quantity(value: str, what: str, example: str) -> tuple[str, str, bool]:
    """(number, unit as ByteSize reads it, whether the unit is in bits) of ``value``."""
    _no_controls(value)
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not {what} (a number and a unit: {example})")
    number, unit, per_second = match.groups()
    if per_second == "ps":  # 10Gbps: bits, 10GBps: bytes
        if unit[-1:] == "b":
            unit = unit[:-1] + "bit"
        elif unit[-1:] != "B":
            raise ValueError(f"{value!r} is not {what} (a number and a unit: {example})")
    lower = unit.lower()
    bits = lower.endswith("bit")
    # pydantic reads "Gb" as gigabytes; on a link "Gb" usually means gigabits: refuse the guess.
    if not bits and unit[-1:] == "b":
        raise ValueError(
            f"{value!r}: unclear unit {unit!r}: write bits as 'bit' ({number}Gbit) or bytes as "
            f"'B' ({number}GB, {number}GiB)"
        )
    if not (bits or unit[-1:] == "B") or lower not in ByteSize.byte_sizes:
        raise ValueError(f"{value!r}: unknown unit {unit!r} ({example})")
    return number, lower, bits


def bytes_per_second(value: str) -> float:
    """The bytes per second of a bandwidth written as ``10Gbit/s``, ``1.25GB/s``, ``400MiB/s``,
    ``10Gbps`` (decimal prefixes k, M, G, T; binary Ki, Mi, Gi, Ti; bits as ``bit`` or ``bps``,
    bytes as ``B``). ValueError naming the value otherwise."""
    number, unit, _ = _quantity(value, "a bandwidth", "10Gbit/s, 1.25GB/s, 400MiB/s")
    rate = float(number) * ByteSize.byte_sizes[unit]
    if not MIN_BANDWIDTH <= rate <= MAX_BANDWIDTH:
        raise ValueError(f"{value!r}: a bandwidth is between 1Mbit/s and 10Tbit/s")
    return rate


def size_bytes(value: str) -> int:
    """The bytes of a size written as ``12GB``, ``9.5GiB``, ``800MB`` (bytes only, no bits)."""
    number, unit, bits = _quantity(value, "a size", "12GB, 9.5GiB")
    if bits or value.strip().endswith(("/s", "ps")):
        raise ValueError(f"{value!r} is not a size in bytes (12GB, 9.5GiB)")
    size = int(float(number) * ByteSize.byte_sizes[unit])
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"{value!r}: a size is between 1MB and 1TB")
    return size


def _bandwidth(value: str) -> str:
    bytes_per_second(value)
    return value


def _size(value: str) -> str:
    size_bytes(value)
    return value


def _pattern(what: str, pattern: str) -> AfterValidator:
    """A validator that the whole value matches ``pattern`` (and holds no control character)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        _no_controls(value)
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def existing_file(value: Path) -> Path:
    """A file on the control machine that must be there (a regular file: not a folder)."""
    # The path is not echoed: a secret's file key sometimes holds the secret itself by mistake.
    path = value.expanduser()
    if not path.exists():
        raise ValueError("no such file on this machine")
    if not path.is_file():
        raise ValueError("not a regular file (a folder?)")
    return value


def local_path(value: str) -> str:
    """A path on the control machine (relative or ``~`` allowed): one line, not empty."""
    _no_controls(value)
    if not value.strip():
        raise ValueError("is empty")
    return value


NodePath = Annotated[str, Strict(), AfterValidator(node_path)]
Name = Annotated[str, Strict(), AfterValidator(name)]
HostName = Annotated[str, Strict(), AfterValidator(host_name)]
SafeText = Annotated[str, Strict(), AfterValidator(safe_text)]
RepoId = Annotated[str, Strict(), AfterValidator(repo_id)]
UserName = Annotated[str, Strict(), AfterValidator(user)]
Url = Annotated[str, Strict(), AfterValidator(url)]
Image = Annotated[str, Strict(), AfterValidator(image)]
DockerSize = Annotated[str, Strict(), AfterValidator(docker_size)]
LocalPath = Annotated[str, Strict(), AfterValidator(local_path)]
# Kept as written ("10Gbit/s"); the Plan reads the number with bytes_per_second / size_bytes.
Bandwidth = Annotated[str, Strict(), AfterValidator(_bandwidth)]
Size = Annotated[str, Strict(), AfterValidator(_size)]
ExistingFile = Annotated[Path, AfterValidator(existing_file)]
# One line of free text (a prompt, a display name): anything but control characters.
Line = Annotated[str, Strict(), AfterValidator(_no_controls)]

# Integers that are not booleans (``True`` is an int in Python), booleans that are not integers.
Count = Annotated[int, Strict(), Field(gt=0)]
NonNegative = Annotated[int, Strict(), Field(ge=0)]
Flag = Annotated[bool, Strict()]
Port = Annotated[int, Strict(), Field(ge=1024, le=65535)]
# Seconds: a positive number (an int is a float here; a boolean is neither).
Seconds = Annotated[float, Strict(), Field(gt=0)]
Fraction = Annotated[float, Strict(), Field(gt=0.0, le=1.0)]
# A safety factor on a size (>= 1: never less than what is needed).
Margin = Annotated[float, Strict(), Field(ge=1.0)]


# Role settings that reach file names, package managers and config files on the nodes. Versions
# and branches may be written as numbers (the role models take 570 as "570").
Version = Annotated[
    str, _pattern("a version (letters, digits and ._+~-)", r"[A-Za-z0-9][A-Za-z0-9._+~-]*")
]
AptVersion = Annotated[
    str, _pattern("an apt version ([epoch:]upstream[-revision])", r"[0-9][A-Za-z0-9.+~:-]*")
]
DriverBranch = Annotated[str, _pattern("a driver branch (digits, e.g. 580)", r"[0-9]{2,4}")]
PackageName = Annotated[
    str,
    Strict(),
    _pattern(
        "a Debian package name ([a-z0-9][a-z0-9+.-]*)", r"[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?"
    ),
]
# Prometheus durations: 15s, 1h30m, 15d.
Duration = Annotated[
    str, Strict(), _pattern("a duration (e.g. 15s, 1h30m, 15d)", r"([0-9]+(ms|s|m|h|d|w|y))+")
]
# A registry as daemon.json's insecure-registries lists it: host[:port] or a CIDR.
Registry = Annotated[
    str, Strict(), _pattern("a registry (host[:port] or CIDR)", r"[A-Za-z0-9][A-Za-z0-9.:\[\]/-]*")
]
SysctlKey = Annotated[
    str,
    Strict(),
    _pattern("a sysctl key (e.g. vm.max_map_count)", r"[A-Za-z0-9_][A-Za-z0-9_.*/-]*"),
]
Email = Annotated[str, Strict(), _pattern("an email address", r"[^\s@'\"]+@[^\s@'\"]+")]
# "cuda" (NVIDIA's repository), or one apt source line of a mirror.
AptSource = Annotated[
    str, Strict(), _pattern("'cuda' or one apt source line (deb ...)", r"cuda|deb(-src)? \S.*")
]


def problem_text(item: Any, values: Mapping[str, Any]) -> str:
    """One line for one pydantic error of a key: the message of this module's checks as it is
    (they name the value where it is safe to), else pydantic's with the value it got."""
    if item["type"] == "value_error":
        return str(item["ctx"]["error"])
    loc = item["loc"]
    where = ".".join(str(part) for part in loc[1:])
    value = _at(values, loc)
    shown = f" (got {value!r})" if value is not None else ""
    return f"{'item ' + where + ': ' if where else ''}{item['msg']}{shown}"


def _at(values: Any, loc: tuple[Any, ...]) -> Any:
    """The value at a pydantic error's location (None where it is not there)."""
    for part in loc:
        if isinstance(values, Mapping) and str(part) in values:
            values = values[str(part)]
        elif isinstance(values, list | tuple) and isinstance(part, int) and part < len(values):
            values = values[part]
        else:
            return None
    return values
