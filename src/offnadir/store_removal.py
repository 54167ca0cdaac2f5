"""Deleting a local store folder: at once (retrying a file that appears while it deletes), or
renamed aside and deleted on a thread while the run goes on (``--overwrite``), with the
leftovers of a run killed while deleting. Which store may be deleted is :func:`offnadir.store.remove`'s
decision; this module only deletes."""

from __future__ import annotations

import shutil
from pathlib import Path


def rmtree_retrying(p: Path, tries: int = 5) -> None:
    """``shutil.rmtree`` that tries again when a file appears while it deletes (a task of the
    failed run finishing its write: "Directory not empty")."""
    import errno
    import time

    for i in range(tries):
        try:
            shutil.rmtree(p)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.ENOTEMPTY or i == tries - 1:
                raise
            time.sleep(0.1 * (i + 1))


#: deletions of replaced stores still running (see :func:`offnadir.store.remove`)
_REMOVALS: list = []
ASIDE_TAG = ".offnadir-removing-"


def remove_aside(p: Path) -> bool:
    """Rename ``p`` to a hidden sibling and delete that on a thread; False if it cannot be renamed.
    Leftovers of a run that was killed while deleting (their pid is gone) are deleted too."""
    import os
    import threading

    aside = p.with_name(f".{p.name}{ASIDE_TAG}{os.getpid()}-{len(_REMOVALS)}")
    try:
        p.rename(aside)
    except OSError:
        return False
    targets = [aside] + _orphans(p)
    t = threading.Thread(target=lambda: [shutil.rmtree(x, ignore_errors=True) for x in targets],
                         name="offnadir-remove-replaced-store", daemon=True)
    t.start()
    if not _REMOVALS:
        import atexit

        atexit.register(wait_for_removals)
    _REMOVALS.append(t)
    return True


def _orphans(p: Path) -> list[Path]:
    """Hidden siblings of ``p`` left half-deleted by an offnadir process that no longer runs."""
    import os

    out = []
    for q in p.parent.glob(f".{p.name}{ASIDE_TAG}*"):
        try:
            pid = int(q.name[len(f".{p.name}{ASIDE_TAG}"):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            out.append(q)
        except (ValueError, PermissionError, OSError):
            continue
    return out


def wait_for_removals() -> None:
    """Wait until the replaced stores deleted in the background are gone."""
    while _REMOVALS:
        _REMOVALS.pop().join()
