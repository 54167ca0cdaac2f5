#!/usr/bin/env bash
# Install what the SLURM test and deploy/slurm/start-single-node.sh need: Debian's slurm-wlm
# (slurmctld, slurmd, sbatch...) and munge. Idempotent: returns at once when both are there.
# Needs root (CI runs as root). Python side: pip install "offnadir[slurm]".
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deploy/slurm/install.sh: run as root (apt-get install slurm-wlm munge)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq slurm-wlm munge >/dev/null
# the packages may start system daemons with their own configs; the test starts its own instances
# with private state, ports and munge socket, so these are not needed
for s in slurmctld slurmd munge; do
  (command -v systemctl >/dev/null && systemctl stop "$s" 2>/dev/null) || true
done
