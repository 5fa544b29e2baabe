"""Files written whole or not at all: beside the destination under a hidden temporary name,
then renamed, so a reader (a web server, a cron mail, DBeaver) never sees half a file and a
failure or a kill leaves nothing at the path.

A symbolic link is followed (the file it names is replaced, the link stays), and what is not
a file to replace (a device such as /dev/null or /dev/stdout, a named pipe) is written in
place: renaming over it would put a regular file where the system keeps a device."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import RegstatError


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call `write(temporary)` (what it returns is not used) and rename the temporary file to `path`; OSError becomes a
    RegstatError naming the path. `write` may leave a `.wal` beside its file (DuckDB)."""
    target = Path(path)
    if target.is_dir():
        raise RegstatError(f"{path}: is a directory")
    if target.exists() and not target.is_file():
        try:
            write(target)
        except OSError as e:
            raise RegstatError(f"{path}: cannot write: {e.strerror or e}") from None
        return target
    destination = Path(os.path.realpath(target))
    temporary = destination.parent / f".{destination.name}.regstat-tmp-{os.getpid()}"
    leftovers = [temporary, temporary.with_name(temporary.name + ".wal")]
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        write(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    except OSError as e:
        raise RegstatError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
    return target


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
