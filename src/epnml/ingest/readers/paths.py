"""Safe file lookup and error texts shared by the readers.

A PDS3 label names its data (``^TABLE``, ``^IMAGE``, ``^STRUCTURE``...). A label
comes from the user, so a pointer must never reach a file outside the granule's
folder: :func:`resolve_pointer` accepts only a plain file name found in the
label's own folder (case-insensitive, as PDS archives copied to Unix mix cases)
whose real path stays in that folder, and refuses everything else with one
message that says nothing about whether the target exists.

Error texts never carry file content (a label line, a value, the first line of a
pointed file) nor server paths: :func:`describe_exception` turns a parser's
exception into a description of its kind, and :func:`guard` maps any unexpected
exception of a parse to a :class:`GranuleError` naming the file.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from epnml.ingest.stage import GranuleError

#: a file name a label may give: no separator, no NUL, not ``.`` or ``..``.
_MAX_NAME = 255
#: a label value we may echo in a message (a short name such as a column name or a
#: projection type): letters, digits, underscores and single spaces.
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?: [A-Za-z0-9_]+)*")
_MAX_SHOWN = 40


class PointerRefused(GranuleError):
    """A label pointer names something other than a plain file in the label's folder."""


def pointer_refused(label_path: Path | str, keyword: str,
                    where: str = "the label's folder") -> PointerRefused:
    """The one refusal for a pointer that leaves the label's folder (same text whether
    or not the target exists)."""
    return PointerRefused(label_path, f"{keyword} pointer must name a file in {where}")


class MissingData(GranuleError):
    """The data file a pointer names (a plain name in the label's folder) is absent."""


def plain_name(name: object) -> str | None:
    """``name`` when it is a plain file name (no folder part), else None."""
    if not isinstance(name, str):
        return None
    if not name or len(name) > _MAX_NAME or name in (".", ".."):
        return None
    if any(c in name for c in ("/", "\\", "\0")) or name != name.strip():
        return None
    return name


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path``'s real location (symlinks followed) is inside ``folder``'s."""
    try:
        real = path.resolve()
        return real.is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # symlink loop
        return False


class _Escapes(Exception):
    """A candidate in the folder resolves outside it (a symlink)."""


def sibling(path: Path, name: str) -> Path | None:
    """The file ``name`` next to ``path`` (case-insensitive), None when absent or when it
    leads out of the folder."""
    try:
        return find_in_folder(path.parent, name)
    except _Escapes:
        return None


def find_in_folder(folder: Path, name: str) -> Path | None:
    """The regular file called ``name`` (case-insensitive) directly in ``folder``.

    None when there is none; raises ``_Escapes`` when the match is a symlink whose
    target lies outside ``folder`` (whether or not that target exists).
    """
    if not folder.is_dir():
        return None
    direct = folder / name
    candidates = [direct] if direct.is_symlink() or direct.exists() else []
    if not candidates:
        low = name.lower()
        try:
            candidates = sorted(p for p in folder.iterdir() if p.name.lower() == low)
        except OSError:
            return None
    for cand in candidates[:1]:
        if not _inside(cand, folder):
            raise _Escapes(name)
        if cand.is_file():
            return cand
    return None


def resolve_pointer(label_path: Path, name: object, keyword: str) -> Path:
    """The data file a label pointer names: a plain name in the label's own folder.

    Absolute paths, ``..``, sub-folders and symlinks leading outside the folder get
    :func:`pointer_refused`; a plain name with no such file gets "... is missing".
    """
    plain = plain_name(name)
    if plain is None:
        raise pointer_refused(label_path, keyword)
    try:
        hit = find_in_folder(label_path.parent, plain)
    except _Escapes:
        raise pointer_refused(label_path, keyword) from None
    if hit is None:
        raise MissingData(label_path, f"data file {plain} named by {keyword} is missing "
                                      "from the label's folder")
    return hit


def shown(value: object, fallback: str) -> str:
    """A label value fit for a message (a short identifier), else ``fallback``."""
    text = str(value)
    return text if len(text) <= _MAX_SHOWN and _IDENTIFIER.fullmatch(text) else fallback


def os_reason(exc: OSError) -> str:
    """An OSError as text without the path it carries."""
    return exc.strerror or type(exc).__name__


def describe_exception(exc: BaseException) -> str:
    """What kind of damage an exception reports, without echoing any content."""
    if isinstance(exc, OSError):
        return os_reason(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"text is not valid {exc.encoding} (byte {exc.start})"
    if isinstance(exc, struct.error):
        return "binary header shorter or other than its format"
    if isinstance(exc, (IndexError, KeyError)):
        return "an index or count points past the data"
    if isinstance(exc, OverflowError):
        return "a number is out of range"
    if isinstance(exc, ZeroDivisionError):
        return "a size or count is zero"
    if isinstance(exc, zlib.error):
        return "corrupt compressed data"
    if isinstance(exc, MemoryError):
        return "too large to hold in memory"
    if isinstance(exc, TypeError):
        return "a value has the wrong type"
    return "a value is invalid"


#: exceptions a parser of damaged input may raise (GranuleError itself passes through).
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    struct.error, IndexError, KeyError, TypeError, UnicodeDecodeError, OverflowError,
    ValueError, ZeroDivisionError, zlib.error, MemoryError, EOFError, OSError,
)


@contextmanager
def guard(path: Path | str, what: str) -> Iterator[None]:
    """Map any unexpected exception of a parse to ``GranuleError(path, "malformed <what>
    (<kind>)")``; GranuleError (and LimitExceeded) raised inside pass unchanged."""
    try:
        yield
    except GranuleError:
        raise
    except OSError as exc:
        raise GranuleError(path, f"cannot read {what}: {os_reason(exc)}") from None
    except PARSE_ERRORS as exc:
        raise GranuleError(path, f"malformed {what} ({describe_exception(exc)})") from None


def require_file(path: Path | str) -> Path:
    """``path`` as a non-empty regular file, else GranuleError naming it."""
    path = Path(path)
    try:
        if not path.exists():
            raise GranuleError(path, "no such file")
        if not path.is_file():
            raise GranuleError(path, "not a regular file")
        if path.stat().st_size == 0:
            raise GranuleError(path, "empty file")
    except OSError as exc:
        raise GranuleError(path, f"cannot read: {os_reason(exc)}") from None
    return path


def read_head(path: Path, limit: int, what: str, source: Path | str | None = None) -> bytes:
    """The whole of a text header file, refused when larger than ``limit`` bytes; errors
    name ``source`` (default: the file)."""
    name = path if source is None else source
    try:
        if not path.is_file():
            raise GranuleError(name, f"{what} is not a regular file")
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise GranuleError(name, f"cannot read {what}: {os_reason(exc)}") from None
    if not data:
        raise GranuleError(name, f"empty {what}")
    if len(data) > limit:
        raise GranuleError(name, f"{what} larger than {limit // 1024} KiB")
    return data
