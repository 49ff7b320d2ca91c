"""Room kept for deletes beside an SQLite file: a file of zeros that is given back when the disk is full.

Deleting a row writes to SQLite's WAL first, so on a disk another program filled to its last byte even a
DELETE fails, and space could not be freed through the service. The reserve is removed to let that
delete through (its bytes then free more), and made again once the disk has room for it twice over.
"""

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

RESERVE_BYTES = 4 * 2**20  # many deletes' worth of WAL frames (a delete changes a few dozen pages)


def is_disk_full(error: BaseException) -> bool:
    """SQLite's SQLITE_FULL, as the database layer reports it."""
    return "disk is full" in str(error)


class DiskReserve:
    def __init__(self, database_file: Path, size: int = RESERVE_BYTES) -> None:
        self.path = database_file.with_name(database_file.name + ".reserve")
        self.size = size

    def ensure(self) -> None:
        """Make the reserve if it is missing and the disk has room for it twice over (never the last of
        the space); nothing when it cannot."""
        if self.path.exists():
            return
        try:
            stats = os.statvfs(self.path.parent)
            if stats.f_bavail * stats.f_frsize < 2 * self.size:
                return
            partial = self.path.with_name(self.path.name + ".tmp")
            with open(partial, "wb") as handle:
                handle.write(b"\0" * self.size)  # written, not sparse: the blocks must really be held
            partial.replace(self.path)
        except OSError:
            log.warning("could not keep %s bytes free beside the database at %s", self.size, self.path)
            with contextlib.suppress(OSError):
                self.path.with_name(self.path.name + ".tmp").unlink()

    def release(self) -> bool:
        """Give the reserve's space back; False when there was none to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("the disk is full: the reserve %s was given back so a delete can go on", self.path)
        return True
