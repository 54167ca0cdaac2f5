#!/usr/bin/env bash
# Start a throw-away single-node SLURM (munged + slurmctld + slurmd) on loopback, as root, with
# every file under DIR. Prints the slurm.conf path; use it as SLURM_CONF for sbatch/squeue/scancel.
#   deploy/slurm/start-single-node.sh DIR [CPUS]
#   export SLURM_CONF=DIR/slurm.conf; sinfo
#   deploy/slurm/stop-single-node.sh DIR        # stops the three daemons (by their pid files)
# Needs: deploy/slurm/install.sh (Debian slurm-wlm + munge). No cgroups, no accounting: for tests
# and trials only; a real site has its own SLURM.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: start-single-node.sh DIR [CPUS]}")
CPUS=${2:-$(nproc)}
mkdir -p "$DIR"/{state,spool,log,munge}
chmod 700 "$DIR/munge"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port)
# memory the node offers: what the machine has, less 10 % for the daemons and the OS
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
# munge: a fresh key and a private socket (does not touch a system munged)
if [ ! -s "$DIR/munge/munge.key" ]; then
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.sock" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed"
cat > "$DIR/slurm.conf" <<CONF
ClusterName=offnadir-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.sock
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF" -N localhost
# wait until the node is idle (slurmd registered)
for _ in $(seq 60); do
  if sinfo -h -N -o %t 2>/dev/null | grep -q -E '^(idle|mix|alloc)'; then echo "$SLURM_CONF"; exit 0; fi
  sleep 0.5
done
echo "SLURM did not come up within 30 s; see $DIR/log/" >&2
sinfo -N >&2 || true
exit 1
