"""Spool files: a learned state passed between the core and a store as a file, not as bytes.

A core of a million arms snapshots to 170 MB. Returned as bytes it sits beside the core while the
store writes it (and a restore reads it whole before decoding), so a replica's memory peaks at
the core plus the snapshot. Through a spool file the core encodes straight into the file and
decodes from it through a buffer (`Core.snapshot_to_path`, `Core.restore_path`), and the store
copies it chunk by chunk: the peak is the core plus one chunk. The file lives in the store's own
directory when it has one (the SQLite database's), else the system's temporary directory, and is
removed when the call ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

#: What the core writes a state to, or reads one from (`snapshot_to_path`, `restore_path`).
StateFile = Callable[[Path], None]


@contextlib.contextmanager
def spool(directory: Path | None, name: str) -> Iterator[Path]:
    """A fresh path for one state file in `directory` (the temporary directory if None); the
    file is deleted on exit if it was created."""
    base = directory if directory is not None else Path(tempfile.gettempdir())
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    path = base / f".modelyard-state-{safe}-{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def off_loop(fn: StateFile, path: Path) -> None:
    """Runs the core's encode or decode on a thread (it releases the GIL), so the event loop
    keeps serving while a large state is written or read."""
    await asyncio.to_thread(fn, path)


def chunks(path: Path, size: int) -> Iterator[bytes]:
    """The file's bytes, `size` at a time."""
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def pieces(state: bytes | bytearray | memoryview | Path, size: int) -> Iterator[bytes | memoryview]:
    """A state held in memory (sliced without copies) or in a spool file, `size` bytes at a time."""
    if isinstance(state, Path):
        yield from chunks(state, size)
        return
    view = memoryview(state)
    for at in range(0, len(view), size):
        yield view[at:at + size]
