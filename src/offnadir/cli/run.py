"""``offnadir run CONFIG.yaml``: the whole job from one validated config file."""

from __future__ import annotations

NAME = "run"


def add_parser(sub):
    p = sub.add_parser(NAME, help="run the pipeline from a config file (see template-config)")
    p.add_argument("config", help="YAML config (offnadir template-config prints a commented template)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (overrides the config)")
    p.add_argument("--scheduler", help="address of an existing dask scheduler (overrides the config)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(args) -> int:
    from offnadir import config
    from offnadir.pipeline import run_config, stage_hooks

    cfg = config.load(args.config)
    if args.overwrite:
        cfg["output"]["overwrite"] = True
    if args.scheduler:
        cfg["cluster"]["scheduler"] = args.scheduler
    out = run_config(cfg, quiet=args.quiet, stage_hooks=stage_hooks(cfg, quiet=args.quiet))
    print(f"wrote {out}")
    return 0
