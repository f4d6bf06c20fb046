#!/usr/bin/env bash
# Start a single-node SLURM cluster (munged + slurmctld + slurmd) on this machine, all state under DIR.
# The node declares one GPU as a generic resource (gres.conf with a stand-in device file) so that the workflow's GPU
# rules (resources: gpu=1 -> sbatch --gpus=1) are scheduled as on a GPU cluster; without a CUDA device
# their jobs run on the CPU (device "auto").
# Usage: bash tests/slurm/start_cluster.sh DIR      -> writes DIR/slurm.conf; export SLURM_CONF=DIR/slurm.conf
#        bash tests/slurm/start_cluster.sh DIR stop
# Needs Debian's slurm-wlm and munge packages and root (the daemons run as root here); used by
# tests/test_slurm.py (opt-in marker `slurm`). Installs nothing itself.
set -euo pipefail
dir=$(realpath -m "${1:?usage: start_cluster.sh DIR [stop]}")
if [ "${2:-}" = stop ]; then
  # the daemons of THIS cluster (started with -f DIR/slurm.conf), then their job steps
  ours=$(pgrep -f "slurm(ctld|d) -f $dir/slurm.conf" || true)
  if [ -n "$ours" ]; then
    SLURM_CONF="$dir/slurm.conf" scancel --full --user "$(id -un)" 2>/dev/null || true
    kill $ours 2>/dev/null || true
    for _ in $(seq 1 10); do
      pgrep -f "slurm(ctld|d) -f $dir/slurm.conf" >/dev/null || break
      sleep 1
    done
    kill -9 $(pgrep -f "slurm(ctld|d) -f $dir/slurm.conf") 2>/dev/null || true
    pkill -9 -x slurmstepd 2>/dev/null || true
  fi
  if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$dir/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf
  fi
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
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
# SLURM drops a GPU without a device file; /dev/null stands in for /dev/nvidia0 (no cgroup enforcement here)
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/null\n' "$host" > "$dir/gres.conf"
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
  ln -sfn "$dir/gres.conf" /etc/slurm/gres.conf
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
