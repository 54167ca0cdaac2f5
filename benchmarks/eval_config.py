"""``--config FILE`` of the evaluation commands (``eval_hard_sim.py``, ``eval_change_real.py``,
``eval_sweep_real.py``): run their jobs with options other than the defaults.

FILE is a YAML run config in the schema of ``offnadir template-config`` holding only the sections
and fields to change, e.g. the opt-in off-level test of the same-date sweep::

    height_sweep:
      dsm_test: off_level

It is merged over the job the evaluation builds (its DSM, images, dates, output store, workers:
mappings merged field by field, the file's value winning; lists replaced) and the result is
validated as ``offnadir run`` validates a config (:func:`offnadir.config.validate`: an unknown
section or field, or a bad value, is a ``ConfigError`` naming the field and FILE), before anything
runs. The inputs are the evaluation's own: a file that sets ``dsm``, ``images``, ``stac`` or
``output.path`` is refused. Relative paths in FILE are taken from its folder, as in ``offnadir run``.
Without ``--config`` the evaluations run exactly the commands they ran before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: what the evaluation decides itself: the inputs it scores and where the store goes
RESERVED = ("dsm", "images", "stac")


def add_argument(ap) -> None:
    ap.add_argument("--config", metavar="FILE", type=Path,
                    help="YAML run config (sections/fields of `offnadir template-config`) merged over the "
                         "evaluation's job, e.g. `height_sweep: {dsm_test: off_level}`; validated as "
                         "`offnadir run` validates; default: the defaults")


def read(path: Path) -> dict:
    """The options of FILE (raw, validated later with the job): a mapping without the
    evaluation's own inputs."""
    from offnadir import config
    from offnadir.errors import ConfigError

    raw = config.read(path)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an evaluation's --config is a mapping of config sections (e.g. "
                          f"`height_sweep: {{dsm_test: off_level}}`), not a {type(raw).__name__}.")
    taken = [k for k in RESERVED if k in raw]
    if isinstance(raw.get("output"), dict) and "path" in raw["output"]:
        taken.append("output.path")
    if taken:
        raise ConfigError(f"{path}: {', '.join(taken)}: the evaluation sets its own inputs and output store; "
                          "remove these from the file (it holds only options to change).")
    return raw


def check(path: Path | None) -> None:
    """Validate FILE over a stand-in job now, so that a bad file fails before an evaluation spends
    minutes simulating or detecting (the real job is validated again when it is built)."""
    if path is None:
        return
    stand_in = {"dsm": {"path": "dsm.tif"}, "images": [{"path": "base.tif"}, {"path": "target.tif"}],
                "output": {"path": "out.zarr"}}
    from offnadir.config import validate

    validate(merged(stand_in, read(path)), base=Path(path).resolve().parent, source=str(path))


def merged(job: dict, over: dict) -> dict:
    """``over`` merged into ``job``: mappings field by field (``over`` wins), anything else replaced."""
    out = dict(job)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def job_config(job: dict, path: Path | None) -> dict:
    """The validated config (:func:`offnadir.config.validate`, which raises ``ConfigError``) of the
    evaluation's ``job`` with FILE's options (``path``; None: the job alone). FILE's relative paths
    are resolved from its folder; the result has absolute paths only."""
    from offnadir.config import validate

    if path is None:
        return validate(job, base=".", source="the evaluation's job")
    return validate(merged(job, read(path)), base=Path(path).resolve().parent,
                    source=f"{path} (merged over the evaluation's job)")


def write_job(job: dict, path: Path | None, dest: Path) -> Path:
    """:func:`job_config` written to ``dest`` (JSON, which is YAML) for ``offnadir run``, which
    validates it again as any config file (validation is idempotent)."""
    dest.write_text(json.dumps(job_config(job, path), indent=1, default=str))
    return dest


def main_with_errors(main, argv=None) -> int:
    """``main(argv)``, with an offnadir error (a bad --config) as one line and exit status 2."""
    from offnadir.errors import OffnadirError

    try:
        return main(argv)
    except OffnadirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
