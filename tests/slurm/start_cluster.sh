#!/usr/bin/env bash
# Start a single-node SLURM cluster (munged + slurmctld + slurmd) on this machine, all state under DIR.
# Usage: bash tests/slurm/start_cluster.sh DIR      -> writes DIR/slurm.conf; export SLURM_CONF=DIR/slurm.conf
#        bash tests/slurm/start_cluster.sh DIR stop
# Needs Debian's slurm-wlm and munge packages and root (the daemons run as root here); used by
# tests/test_slurm.py (opt-in marker `slurm`). Installs nothing itself.
set -euo pipefail
dir=$(realpath -m "${1:?usage: start_cluster.sh DIR [stop]}")
if [ "${2:-}" = stop ]; then
  for name in slurmd slurmctld; do
    [ -f "$dir/$name.pid" ] && kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
  done
  [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$dir/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
  exit 0
fi
for tool in slurmctld slurmd munged sbatch; do
  command -v "$tool" >/dev/null || { echo "start_cluster: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 2; }
done
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=bilevel-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
fi
export SLURM_CONF="$dir/slurm.conf"
# srun inside a batch job reads the default /etc/slurm/slurm.conf (the executor plugin controls the
# job's environment, so SLURM_CONF does not reach it): point the default at this cluster's file,
# unless a real configuration is there.
mkdir -p /etc/slurm
if [ ! -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
  ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
else
  echo "start_cluster: /etc/slurm/slurm.conf exists and is not ours; jobs may use it" >&2
fi
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 60); do
  if sinfo -h -o "%T" 2>/dev/null | grep -qE "^(idle|mixed)"; then
    echo "start_cluster: node $host idle ($cpus CPUs, $mem MB); export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "start_cluster: the node did not become idle; see $dir/log" >&2
sinfo >&2 || true
exit 1
