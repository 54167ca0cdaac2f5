"""Render the ``DaskCluster`` resource offnadir creates for ``cluster.kind: kubernetes`` (the same
function the run uses), to read, review or ``kubectl apply -f`` by hand:

    python deploy/kubernetes/render.py [CONFIG.yaml] > daskcluster.yaml

Without a config: the defaults (image offnadir-worker:latest, 1 worker, tiles of 1024 cells,
2 images), which is what ``deploy/kubernetes/daskcluster.yaml`` holds.
"""

from __future__ import annotations

import sys

import yaml


def render(cfg: dict | None = None) -> dict:
    from offnadir.backends import kubernetes_spec, options_for

    cfg = cfg or {}
    cluster = cfg.get("cluster") or {}
    sizing = {"chunk": (cfg.get("tiling") or {}).get("chunk") or 1024, "n_images": len(cfg.get("images") or []) or 2}
    return kubernetes_spec(options_for("kubernetes", cluster), cluster.get("n_workers"), sizing)


def main(argv: list[str]) -> int:
    cfg = None
    if argv:
        from offnadir.config import load

        cfg = load(argv[0])
    sys.stdout.write(yaml.safe_dump(render(cfg), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
