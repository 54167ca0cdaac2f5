"""``offnadir run CONFIG.yaml``: the whole job from one validated config file."""

from __future__ import annotations

NAME = "run"
#: imported before the run with the garbage collector paused (see offnadir.cli.main)
IMPORTS = ("offnadir.pipeline",)


def add_parser(sub):
    from offnadir.cli.coregister import add_cluster_arguments

    p = sub.add_parser(NAME, help="run the pipeline from a config file (see template-config)")
    p.add_argument("config", help="YAML config (offnadir template-config prints a commented template)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (overrides the config)")
    p.add_argument("--scheduler", help="address of an existing dask scheduler (overrides the config)")
    add_cluster_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--no-stac-out", action="store_false", dest="stac_out",
                   help="do not write the STAC collection of the change maps beside the store (STORE.stac/)")
    return p


def run(args) -> int:
    from offnadir import config
    from offnadir.cli.coregister import cluster_options
    from offnadir.pipeline import run_config, stage_hooks

    cfg = config.load(args.config)
    overrides = {k: v for k, v in {"scheduler": args.scheduler, **cluster_options(args)}.items() if v is not None}
    if args.overwrite or overrides:
        # command-line values go through the same checks as the file's
        raw = {k: v for k, v in cfg.items()}
        raw["output"] = {**cfg["output"], "overwrite": cfg["output"]["overwrite"] or args.overwrite}
        raw["cluster"] = {**cfg["cluster"], **overrides}
        cfg = config.validate(raw, base=".", source=f"{args.config} + command line")
    hooks = stage_hooks(cfg, quiet=args.quiet)
    if hooks:  # change detection will run
        from offnadir.preflight import check_change_inputs

        check_change_inputs(cfg)
    out = run_config(cfg, quiet=args.quiet, stage_hooks=hooks)
    if hooks and args.stac_out and any(type(h).__name__ == "_ChangeStage" for h in hooks):
        from offnadir.stac_out import write_stac_quietly

        write_stac_quietly(out, quiet=args.quiet)
    print(f"wrote {out}")
    return 0
