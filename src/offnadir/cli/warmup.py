"""``offnadir warmup``: compile every numba kernel into the cache before any run (a worker image,
a new environment, a SLURM job's first step), so runs and their workers load machine code
instead of compiling it."""

from __future__ import annotations

import json

NAME = "warmup"


def add_parser(sub):
    p = sub.add_parser(NAME, help="compile the numba kernels into the cache (once per environment / worker image)",
                       description="Run the pipeline on a tiny simulated scene in this process so that every numba "
                                   "kernel is compiled for the signatures runs use, plus every image pixel type, "
                                   "and stored in the numba cache (NUMBA_CACHE_DIR when set, else __pycache__ beside "
                                   "the kernels when writable, else ~/.cache/numba). Workers that see the same "
                                   "directory, the same offnadir files and the same CPU type then load the kernels "
                                   "instead of compiling them. A warm cache makes this command a check (nothing "
                                   "compiled). See deploy/README.md for worker images and SLURM.")
    p.add_argument("--workdir", help="folder for the temporary scene (default: the system's temp folder)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args) -> int:
    from offnadir.warmup import format_report, warmup

    rep = warmup(args.workdir, quiet=True)
    print(json.dumps(rep, indent=1) if args.json else format_report(rep))
    return 0
