"""How the client names files: safe S3 key names, safe local names, and writing a download.

A local name comes partly from the worker (an output key's extension) and partly from
the user's input name: either may hold another OS's separators, a drive letter, `..`,
control characters or a name Windows reserves. Every local name is reduced to a safe
base name first, and a download never replaces an existing file unless asked to: it
gets the next free numbered name (photo-equalized-1.jpg) instead.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from worker_src import contract

# Characters Windows refuses in a name, and every control character.
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f]')
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9¹²³])(\..*)?",
                       re.IGNORECASE)
MAX_NAME_CHARS = 200
# The label of an output's name where it is not the kind's name: the `equalize` shortcut's
# (and the page's) photo-equalized.jpg.
SHORTCUT_LABELS = {"equalize": "equalized"}
# Numbered names tried before giving up (photo-1.jpg ... photo-999.jpg).
MAX_NUMBER = 999


def safe_name(name: str) -> str:
    """A file name that is safe as the last part of an S3 key."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return cleaned.lstrip(".") or "file"


def safe_base_name(name: str) -> str:
    """`name` as a plain file name on every OS: its last part under / or \\, without drive
    letters, leading dots, trailing dots or spaces, control or reserved characters, and
    never a name Windows reserves (CON, NUL, COM1, ...)."""
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE.sub("_", base).lstrip(". ").rstrip(". ")
    if _RESERVED.fullmatch(base):
        base = "_" + base
    if len(base) > MAX_NAME_CHARS:
        suffix = PurePosixPath(base).suffix[:16]
        base = base[:MAX_NAME_CHARS - len(suffix)] + suffix
    return base or "file"


def output_path(output_dir: Path, input_name: str, label: str, output_key: str) -> Path:
    """DIR/<stem>-<label><ext>: the input's stem, the output's extension (from its key)."""
    stem = PurePosixPath(safe_base_name(input_name)).stem
    suffix = PurePosixPath(safe_base_name(output_key)).suffix
    return output_dir / safe_base_name(contract.output_name(stem, label, suffix))


def write_new(source: BinaryIO, destination: Path, *, overwrite: bool = False) -> Path:
    """Copy a stream to `destination`, or to its next free numbered name; the path written.

    The data goes first to a temporary `.part` file that mkstemp creates exclusively
    (O_EXCL, so a planted file or symlink is never followed), then is linked into place,
    which fails rather than replace a file that appeared meanwhile. A failed copy leaves
    nothing behind. `overwrite` replaces an existing destination instead.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(dir=destination.parent, suffix=".part",
                                            prefix=f".{destination.name}.")
    partial = Path(partial_name)
    try:
        with os.fdopen(handle, "wb") as file:
            shutil.copyfileobj(source, file, length=1024 * 1024)
        if overwrite:
            partial.replace(destination)
            return destination
        return _place(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def _place(partial: Path, destination: Path) -> Path:
    """Link `partial` at destination or its first free numbered name (never replacing one)."""
    stem, suffix = destination.stem, destination.suffix
    for number in range(MAX_NUMBER + 1):
        target = destination if not number else destination.with_name(
            f"{stem}-{number}{suffix}")
        try:
            os.link(partial, target)
            return target
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links (FAT, some network shares)
            if target.exists() or target.is_symlink():
                continue
            partial.rename(target)
            return target
    raise FileExistsError(f"{destination} and {MAX_NUMBER} numbered names exist already")
