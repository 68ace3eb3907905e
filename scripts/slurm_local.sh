#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests: one controller, one node with the machine's
# CPUs and memory, one partition named `debug`.
#
#   scripts/slurm_local.sh start    # installs slurm-wlm and munge when missing (Debian, root), starts
#                                   # munged, slurmctld and slurmd; prints `export SLURM_CONF=...`
#   scripts/slurm_local.sh stop     # stops the daemons this script started
#   scripts/slurm_local.sh status   # exit 0 when the cluster answers, 1 when not
#
# Its configuration, state and logs live under $EVALKIT_SLURM_DIR (default: a directory under the
# system's temporary directory). Clients (srun, sbatch, sinfo) find the cluster through SLURM_CONF.
# Both commands are idempotent: start on a running cluster and stop on a stopped one change nothing.
# Jobs are killed when they exceed their --mem (sampled every second) or their --time.
set -euo pipefail

dir="${EVALKIT_SLURM_DIR:-${TMPDIR:-/tmp}/evalkit-slurm}"
conf="$dir/slurm.conf"
ctld_port="${EVALKIT_SLURM_PORT:-6917}"   # not Slurm's default 6817, to leave a real cluster's alone
munge_socket="$dir/munge/munge.socket"

die() { echo "slurm_local.sh: $*" >&2; exit 1; }

answers() {
    [ -f "$conf" ] && SLURM_CONF="$conf" timeout 5 sinfo -h -p debug -o '%T' 2>/dev/null | grep -qE 'idle|mix|alloc'
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v srun >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are not installed and installing them needs root; run: sudo apt-get install slurm-wlm munge"
    command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and this is not a Debian system (no apt-get); install Slurm and munge yourself"
    echo "installing slurm-wlm and munge ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$dir/apt.log" 2>&1 \
        || { apt-get update -q >>"$dir/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$dir/apt.log" 2>&1; } \
        || die "could not install slurm-wlm and munge; see $dir/apt.log"
}

write_config() {
    local host node
    host="$(hostname -s)"
    # The node as slurmd sees it (CPUs, sockets, cores, threads, memory): a mismatch would drain it.
    node="$(slurmd -C | head -n 1)"
    [[ "$node" == NodeName=* ]] || die "slurmd -C did not describe this node: $node"
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    cat >"$conf" <<EOF
# written by scripts/slurm_local.sh: a single-node test cluster
ClusterName=evalkit-local
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
InactiveLimit=0
DefMemPerCPU=2048
KillWait=5
MinJobAge=600
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

start_munge() {
    if [ -S "$munge_socket" ] && munge -S "$munge_socket" -n </dev/null 2>/dev/null | unmunge -S "$munge_socket" >/dev/null 2>&1; then
        return
    fi
    local key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        mungekey --create --keyfile="$key" 2>/dev/null || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
        chown munge:munge "$key" 2>/dev/null || true
        chmod 400 "$key"
    fi
    munged --socket="$munge_socket" --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" --force \
        || die "munged did not start; see $dir/munge/munged.log"
}

start() {
    mkdir -p "$dir"
    if answers; then
        echo "export SLURM_CONF=$conf"
        return
    fi
    install_packages
    stop_daemons
    write_config
    start_munge
    slurmctld -f "$conf" || die "slurmctld did not start; see $dir/slurmctld.log"
    slurmd -f "$conf" || die "slurmd did not start; see $dir/slurmd.log"
    for _ in $(seq 1 60); do
        if answers; then
            echo "export SLURM_CONF=$conf"
            return
        fi
        sleep 0.5
    done
    die "the cluster did not come up within 30 s; see $dir/slurmctld.log and $dir/slurmd.log"
}

stop_pidfile() {
    local file="$1" pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$file"
}

stop_daemons() {
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munge/munged.pid"
    rm -f "$munge_socket" "$munge_socket.lock"
}

case "${1:-}" in
    start) start ;;
    stop) stop_daemons ;;
    status) answers ;;
    *) die "usage: scripts/slurm_local.sh start|stop|status" ;;
esac
