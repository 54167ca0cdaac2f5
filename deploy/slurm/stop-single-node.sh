#!/usr/bin/env bash
# Stop what start-single-node.sh DIR started (by pid file; nothing else is touched).
DIR=$(realpath -m "${1:?usage: stop-single-node.sh DIR}")
for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
  [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
done
exit 0
