"""Which outputs a run may write or replace, and who may write them.

* :func:`check_target` refuses, before any work, an output path that is dangerous to write or to
  replace: the filesystem root, the home folder, the current folder or one of its parents, an input
  file, a folder holding an input, a path under a regular file, or a folder we cannot write into.
  ``--overwrite`` only ever removes a store that offnadir wrote (it carries the marker file
  :data:`offnadir.store.MARKER`); anything else is a clean refusal.
* :class:`OutputLock` is an exclusive lock per output, held by the client process for the whole
  run: a second writer is refused with the holder named. It is a ``flock`` on a small file beside
  the store, so a holder that died (SIGKILL, power loss) releases it with its file descriptor and
  the next run takes over; the file's JSON says who held it.
  A store on object storage (``s3://``...) cannot be flocked: the lock is then an object beside the
  store created with an exclusive put (S3 ``If-None-Match: *``, which fsspec's ``"xb"`` mode sends),
  so of two runs starting together exactly one gets it; it is deleted when the run ends. Nothing
  releases it when the holder dies (no file descriptor to close): the next run is refused, told who
  held it since when, and told to delete that object once sure the holder is gone.
* :func:`fingerprint` is what a store was computed from (inputs with their sizes and modification
  times, every option that changes a cell, the software version); ``--resume`` compares it with the
  store's and refuses a different plan, naming the differences (:func:`plan_differences`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path

from offnadir.errors import ConfigError, OutputExistsError

log = logging.getLogger("offnadir.outputs")

#: config sections that do not change any cell of the result (where and how fast it runs)
NEUTRAL_SECTIONS = ("output", "cluster")
#: config fields naming input files: their size and modification time enter the fingerprint
INPUT_FIELDS = {"dsm": ("path", "geoid"), "images": ("path", "model", "gcps")}


# ----------------------------------------------------------------------------- paths
def _real(p) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(p))))


def input_paths(cfg: dict) -> list:
    """Every input file named by a validated config (``Path``; URLs as text)."""
    out = []
    for sec, names in INPUT_FIELDS.items():
        entries = cfg.get(sec) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            out += [entry[n] if _is_url(entry[n]) else Path(entry[n]) for n in names if entry.get(n)]
    return out


def _is_url(p) -> bool:
    from offnadir.io.remote import is_url

    return is_url(str(p))


def check_target(out, inputs=(), *, replacing: bool) -> None:
    """Refuse an output path that must not be written (or, with ``replacing``, removed)."""
    if _is_url(out):
        return _check_url_target(str(out), inputs, replacing=replacing)
    inputs = [q for q in inputs if not _is_url(q)]
    p = _real(out)
    home, cwd = _real("~"), _real(os.getcwd())
    fix = "Choose a new path for the output store, e.g. -o result.zarr."
    if p == Path(p.anchor) or p == home:
        raise ConfigError(f"{out}: refusing to use {'the filesystem root' if p == Path(p.anchor) else 'your home folder'}"
                          f" as the output store. {fix}")
    if p == cwd or p in cwd.parents:
        raise ConfigError(f"{out}: this is the current folder{' or one of its parents' if p != cwd else ''}; "
                          f"offnadir writes the output store as a folder of its own. {fix}")
    for q in map(_real, inputs):
        if q == p:
            raise ConfigError(f"{out}: this is an input file of the run; the output must not replace it. {fix}")
        if p in q.parents:
            raise ConfigError(f"{out}: this folder holds the input {q}; the output store must not contain inputs. "
                              f"{fix}")
    parent = p.parent
    for a in [parent, *parent.parents]:
        if a.exists():
            if not a.is_dir():
                raise ConfigError(f"{out}: {a} is a file, not a folder, so nothing can be written under it. {fix}")
            if not os.access(a, os.W_OK | os.X_OK):
                raise ConfigError(f"{out}: cannot write into {a} (permission denied or read-only file system). "
                                  f"{fix}")
            break
    if p.exists() and replacing:
        from offnadir.store import is_offnadir_store

        if not is_offnadir_store(p):
            what = "a file" if not p.is_dir() else "a folder offnadir did not write (no offnadir.json marker)"
            raise OutputExistsError(f"{out}: exists and is {what}; --overwrite only replaces stores written by "
                                    f"offnadir. Remove it yourself if you mean to, or {fix[0].lower()}{fix[1:]}")


def _check_url_target(out: str, inputs, *, replacing: bool) -> None:
    from offnadir import store

    if any(str(q).rstrip("/") == out.rstrip("/") for q in inputs):
        raise ConfigError(f"{out}: this is an input of the run; the output must not replace it. Choose another URL "
                          "for the output store.")
    if replacing and store.exists(out) and not store.is_offnadir_store(out):
        raise OutputExistsError(f"{out}: exists and is not a store written by offnadir; --overwrite only replaces "
                                "offnadir's stores. Remove it yourself if you mean to, or choose another URL.")


# ----------------------------------------------------------------------------- lock
#: locks this process holds: path -> depth
_HELD: dict[str, int] = {}


def lock_path(out):
    """The lock beside the output: a local ``Path``, or the URL of the lock object of a remote store."""
    if _is_url(out):
        parent, _, name = str(out).rstrip("/").rpartition("/")
        return f"{parent}/.{name}.offnadir-lock"
    p = _real(out)
    return p.parent / f".{p.name}.offnadir-lock"


class OutputLock:
    """Exclusive writer lock of one output (a context manager); see the module docstring."""

    def __init__(self, out):
        self.out = Path(out)
        self.path = lock_path(out)
        self._fd = None

    def acquire(self) -> OutputLock:
        import fcntl

        key = str(self.path)
        if key in _HELD:  # this process holds it already (a run calling a writer): re-entrant
            _HELD[key] += 1
            self._fd = -1
            return self
        if _is_url(self.path):
            _acquire_object(self.out, key)
            self._fd = -1
            _HELD[key] = 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputExistsError(f"{self.out}: another offnadir run is writing this output ({_holder(self.path)}). "
                                    "Wait for it to finish, stop it, or choose another output path.") from None
        old = _read_json(self.path)
        if old.get("pid"):
            log.warning("%s: taking over a stale lock of pid %s on %s (that run ended without releasing it)",
                        self.out, old.get("pid"), old.get("host"))
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        self._fd = fd
        _HELD[key] = 1
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        key = str(self.path)
        _HELD[key] -= 1
        if _HELD[key] > 0:
            self._fd = None
            return
        del _HELD[key]
        if _is_url(self.path):
            _release_object(key)
            self._fd = None
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def _acquire_object(out, url: str) -> None:
    """Create the lock object ``url`` exclusively (S3 conditional put), or refuse naming its holder."""
    import fsspec

    fs, p = fsspec.core.url_to_fs(url)
    info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
    try:
        with fs.open(p, "xb") as f:
            f.write(info)
    except FileExistsError:
        try:
            d = json.loads(fs.cat_file(p))
            who = f"pid {d.get('pid')} on {d.get('host')} since {d.get('since')}"
        except Exception:  # noqa: BLE001 - the holder's note is a courtesy
            who = "holder unknown"
        raise OutputExistsError(f"{out}: another offnadir run is writing this output ({who}), or one that died "
                                f"left its lock: object storage cannot release a lock when its holder dies. Wait for "
                                f"the run to finish; if it is gone, delete {url} and run again.") from None
    except (NotImplementedError, ValueError) as e:
        raise ConfigError(f"{out}: this storage cannot create an object exclusively ({e}), so offnadir cannot lock "
                          "the output against a second writer. Write the store to S3 (s3fs) or a local folder.") \
            from None
    log.info("%s: locked by the object %s (deleted at the end of the run)", out, url)


def _release_object(url: str) -> None:
    import fsspec

    try:
        fs, p = fsspec.core.url_to_fs(url)
        fs.rm(p)
    except Exception as e:  # noqa: BLE001 - say so; the next run names the stale lock
        log.warning("%s: could not delete the lock object (%s); delete it before the next run", url, e)


def _read_json(path) -> dict:
    try:
        d = json.loads(Path(path).read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder(path) -> str:
    d = _read_json(path)
    if not d:
        return "holder unknown"
    return f"pid {d.get('pid')} on {d.get('host')} since {d.get('since')}"


def is_locked(out) -> bool:
    """True while a live run holds the output's lock (used by readers to warn)."""
    import fcntl

    path = lock_path(out)
    if _is_url(path):
        import fsspec

        try:
            fs, p = fsspec.core.url_to_fs(path)
            return bool(fs.exists(p))
        except Exception:  # noqa: BLE001 - a courtesy for a message
            return False
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


# ----------------------------------------------------------------------------- fingerprint
def _file_stamp(p) -> dict:
    if _is_url(p):  # a URL: no cheap size/time without a request; the URL itself is the identity
        return {"url": str(p)}
    try:
        st = Path(p).stat()
    except OSError:
        return {"path": str(p), "missing": True}
    return {"path": str(_real(p)), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def fingerprint(cfg: dict, extra: dict | None = None) -> dict:
    """What a store computed from ``cfg`` depends on: the config without its neutral sections,
    each input file's size and modification time, and the software version (``extra``: anything
    else the caller knows, e.g. the tile grid)."""
    from offnadir._version import __version__

    plan = json.loads(json.dumps({k: v for k, v in cfg.items() if k not in NEUTRAL_SECTIONS}, default=str))
    for sec, names in INPUT_FIELDS.items():  # the same file named another way is the same input
        entries = plan.get(sec) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            for n in names:
                if isinstance(entry, dict) and entry.get(n) and not _is_url(entry[n]):
                    entry[n] = str(_real(entry[n]))
    files = [_file_stamp(p) for p in input_paths(cfg)]
    out = {"version": __version__, "config": plan, "inputs": files}
    if extra:
        out["extra"] = extra
    return json.loads(json.dumps(out, default=str))  # plain JSON types, as stored


def plan_differences(old, new, prefix: str = "") -> list[str]:
    """Readable differences between two fingerprints: ``["config.tiling.chunk: 64 -> 128", ...]``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{key}: added")
            elif k not in new:
                out.append(f"{key}: removed")
            else:
                out += plan_differences(old[k], new[k], key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out += plan_differences(a, b, f"{prefix}[{i}]")
        return out
    if old != new:
        return [f"{prefix}: {_short(old)} -> {_short(new)}"]
    return []


def _short(v) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 80 else s[:77] + "..."
