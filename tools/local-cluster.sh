#!/usr/bin/env bash
# tools/local-cluster.sh -- a real, single-machine Slurm cluster for trying ot-hpc.
#
# Usage (as root, on Debian 12 / Slurm 22.05 or Debian 13 / Slurm 24.11):
#     bash tools/local-cluster.sh start|stop|status|restart|install
#     bash tools/local-cluster.sh stop-daemon|start-daemon slurmctld|slurmdbd   (fault tests)
#     bash tools/local-cluster.sh stop-node|start-node nK   (fault tests: a node dies, comes back)
#
# `start` installs Debian's packages if needed (slurmctld, slurmd, slurmdbd,
# munge, mariadb-server, ...), writes /etc/slurm/{slurm,slurmdbd,gres,cgroup}.conf
# and starts, WITHOUT systemd, in this order:
#     munged -> mariadbd (unix socket only) -> slurmdbd -> slurmctld -> N x slurmd
# Every daemon runs in the foreground of its own session (setsid nohup ... &);
# its pid goes to $RUN_DIR/<name>.pid and its output to $LOG_DIR/<name>.log.
# `stop` ends exactly those pids (SIGTERM, then SIGKILL after a timeout) and
# never kills anything by name. All steps are idempotent: `start` on a running
# cluster only prints the status, and `start` after an unclean stop works.
#
# The cluster emulates OT_LOCAL_NODES nodes (n1..nN, default 3), each running
# its own slurmd on 127.0.0.1 (ports 17001..), each with OT_LOCAL_GPUS fake
# GPUs (default 4; gres/gpu backed by /dev/null, so jobs see CUDA_VISIBLE_DEVICES
# but no real device). Partitions: debug (default) and gpu, both on all nodes.
# With OT_LOCAL_NETWORK=separate (the default where it works) every node, the login
# node and "the internet" are separate hosts in their own network namespaces; see
# tools/local-network.sh. OT_LOCAL_NETWORK=loopback keeps everything on 127.0.0.x.
set -euo pipefail

# ----------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------
NODES="${OT_LOCAL_NODES:-3}"
GPUS="${OT_LOCAL_GPUS:-4}"
CLUSTER=local                                # ClusterName and accounting account
RUN_DIR=/run/ot-hpc-local-cluster            # our pid files (tmpfs: gone after reboot)
DATA_DIR=/var/lib/ot-hpc-local-cluster       # slurmctld state, db password
LOG_DIR=/var/log/ot-hpc-local-cluster        # one log per daemon
ETC=/etc/slurm                               # Debian's default config dir
SPOOL=/var/spool/slurmd                      # + /<node> per slurmd
FIRST_NODE_PORT=17001
CTLD_PORT=6817
DBD_PORT=6819
DB_NAME=slurm_acct_db
DB_USER=ot_hpc_slurm
MARKER="# Managed by ot-hpc tools/local-cluster.sh -- rewritten on every start."
PACKAGES=(slurmctld slurmd slurm-client slurmdbd slurm-wlm-mysql-plugin munge mariadb-server)
READY_TIMEOUT=60                             # seconds to wait for each stage
# shellcheck source=tools/local-network.sh
source "$(dirname "${BASH_SOURCE[0]}")/local-network.sh"

# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------
say()  { printf '[local-cluster] %s\n' "$*"; }
warn() { printf '[local-cluster] WARNING: %s\n' "$*" >&2; }
die()  { printf '[local-cluster] ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
now()  { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

node_names() { local i; for ((i = 1; i <= NODES; i++)); do printf 'n%d\n' "$i"; done; }
# "n[1-3]" (or "n1" for a single node) -- Slurm hostlist syntax.
node_list() { if ((NODES == 1)); then echo n1; else echo "n[1-$NODES]"; fi; }

# Is $1 a live process whose executable is one of $2...? Debian's /usr/sbin/slurm*
# are symlinks to slurm*-wlm, so "slurmctld" also matches "slurmctld-wlm".
# Zombies count as dead. Non-root callers cannot read /proc/PID/exe of root's
# processes, so fall back to /proc/PID/comm (the name it was started as).
pid_is() {
    local pid=$1 exe n stat
    shift
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    if ! exe=$(readlink "/proc/$pid/exe" 2>/dev/null); then
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        [[ ${stat%% *} != Z ]] || return 1
        exe=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    fi
    exe=${exe% (deleted)}
    exe=${exe##*/}
    for n in "$@"; do [[ $exe == "$n" || $exe == "$n-wlm" ]] && return 0; done
    return 1
}
read_pid() { [[ -r $1 ]] && head -c 32 "$1" | tr -dc '0-9' || true; }

# Daemon table: <name> -> executable names it may show up as, and the pid file
# the daemon writes itself (used to detect copies we did not start, and to
# clean stale files after a crash).
exe_names() {
    case $1 in
        munged) echo munged ;;
        mariadbd) echo mariadbd mysqld ;;
        slurmdbd) echo slurmdbd ;;
        slurmctld) echo slurmctld ;;
        slurmd.*) echo slurmd ;;
    esac
}
own_pidfile() {
    case $1 in
        munged) echo /run/munge/munged.pid ;;
        mariadbd) echo /run/mysqld/mysqld.pid ;;
        slurmdbd) echo /run/slurmdbd.pid ;;
        slurmctld) echo /run/slurmctld.pid ;;
        slurmd.*) echo "/run/$1.pid" ;;      # SlurmdPidFile=/run/slurmd.%n.pid
    esac
}
# pid of daemon $1 if WE started it and it is alive, else nothing (exit 1).
our_pid() {
    local pid
    pid=$(read_pid "$RUN_DIR/$1.pid")
    # shellcheck disable=SC2046
    pid_is "$pid" $(exe_names "$1") && { echo "$pid"; return 0; }
    return 1
}
# Daemons in start order; slurmd.* for configured nodes and any left-over pid file.
all_daemons() {
    local f
    printf '%s\n' munged mariadbd slurmdbd slurmctld
    {
        node_names | sed 's/^/slurmd./'
        for f in "$RUN_DIR"/slurmd.*.pid; do [[ -e $f ]] && basename "$f" .pid; done
    } | sort -u -V
}

# Wait until "$@" succeeds; poll every 0.2 s for at most $timeout seconds.
wait_for() {
    local what=$1 timeout=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# slurmctld answers pings (a bare TCP probe would log "Zero Bytes" errors there).
ctld_up() { [[ $(timeout 5 scontrol ping 2>/dev/null) == *"is UP"* ]]; }

show_logs() {
    local f
    for f in "$LOG_DIR"/*.log "$LOG_DIR"/*.stderr; do
        [[ -s $f ]] || continue
        printf '\n===== tail %s =====\n' "$f" >&2
        if [[ $f == *.stderr ]]; then tail -n 5 "$f" >&2; else tail -n 20 "$f" >&2; fi
    done
}
fail_start() {
    printf '[local-cluster] ERROR: %s\n' "$*" >&2
    show_logs
    printf '[local-cluster] ERROR: %s (logs above; run "%s stop" to clean up)\n' "$*" "$0" >&2
    exit 1
}

# ----------------------------------------------------------------------------
# Install Debian packages (idempotent; daemons must NOT be started by postinst)
# ----------------------------------------------------------------------------
POLICY_RC=/usr/sbin/policy-rc.d
remove_policy_rc() { rm -f "$POLICY_RC"; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    have apt-get || die "apt-get not found: this script supports Debian 12/13 only"

    say "installing: ${missing[*]}"
    if [[ ! -e $POLICY_RC ]]; then
        # policy-rc.d exiting 101 stops invoke-rc.d from starting the daemons
        # in the packages' postinst scripts. Removed again on exit.
        printf '#!/bin/sh\n# temporary, by ot-hpc tools/local-cluster.sh\nexit 101\n' >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
        trap remove_policy_rc EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show slurmctld >/dev/null 2>&1; then
        apt-get update -q || die "apt-get update failed"
    fi
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${PACKAGES[@]}" || die "apt-get install failed"
    if [[ $(trap -p EXIT) == *remove_policy_rc* ]]; then
        remove_policy_rc
        trap - EXIT
    fi
}

# ----------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------
SLURM_MAJOR=0 SLURM_MINOR=0
detect_slurm_version() {
    local v
    v=$(slurmd -V 2>/dev/null | grep -oE '[0-9]+\.[0-9]+' | head -n1) || true
    [[ -n $v ]] || die "cannot run 'slurmd -V' (is slurmd installed?)"
    SLURM_MAJOR=${v%%.*}
    SLURM_MINOR=${v#*.}
    SLURM_MINOR=$((10#$SLURM_MINOR))
    ((SLURM_MAJOR > 22 || (SLURM_MAJOR == 22 && SLURM_MINOR >= 5))) ||
        warn "Slurm $v is older than 22.05; this script was written for 22.05 and 24.11"
}

# Use proctrack/cgroup only when Slurm's cgroup autodetection will pick cgroup v1,
# i.e. /sys/fs/cgroup is a tmpfs with v1 controllers (incl. the named "systemd"
# hierarchy that Slurm stats). On pure cgroup v2 (or v2-in-hybrid) without
# systemd, cgroup/v2 cannot work here ("Hybrid mode is not supported", no dbus
# to create a scope), so fall back to proctrack/linuxproc.
cgroup_v1_usable() {
    [[ $(stat -f -c %T /sys/fs/cgroup/ 2>/dev/null) == tmpfs ]] || return 1
    [[ $(stat -f -c %T /sys/fs/cgroup/systemd/ 2>/dev/null) == cgroupfs ]] || return 1
    [[ $(stat -f -c %T /sys/fs/cgroup/freezer/ 2>/dev/null) == cgroupfs ]] || return 1
    [[ -w /sys/fs/cgroup/freezer ]]
}

HOST="" CPUS="" SOCKETS="" CORES="" THREADS="" NODE_MEM="" DEF_MEM="" PROCTRACK="" TASK_PLUGIN_LINE=""
compute_layout() {
    [[ $NODES =~ ^[0-9]+$ ]] && ((NODES >= 1 && NODES <= 64)) ||
        die "OT_LOCAL_NODES must be an integer 1..64 (got '$NODES')"
    [[ $GPUS =~ ^[0-9]+$ ]] && ((GPUS <= 64)) ||
        die "OT_LOCAL_GPUS must be an integer 0..64 (got '$GPUS')"
    # Short hostname, derived exactly like Slurm does (gethostname, cut at '.').
    HOST=$(uname -n)
    HOST=${HOST%%.*}
    [[ -n $HOST ]] || die "cannot determine the short hostname"

    # Real topology from `slurmd -C`, e.g. "NodeName=vm CPUs=2 Boards=1
    # SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105".
    local c key val boards=1 spb=1 mem=0
    c=$(slurmd -C 2>/dev/null | head -n1) || true
    [[ $c == NodeName=* ]] || die "'slurmd -C' failed: cannot detect CPUs/memory"
    for kv in $c; do
        key=${kv%%=*} val=${kv#*=}
        case $key in
            CPUs) CPUS=$val ;;
            Boards) boards=$val ;;
            SocketsPerBoard) spb=$val ;;
            CoresPerSocket) CORES=$val ;;
            ThreadsPerCore) THREADS=$val ;;
            RealMemory) mem=$val ;;
        esac
    done
    SOCKETS=$((boards * spb))
    # Every emulated node advertises all CPUs (they share them), but memory is
    # split: keep 20% (at least 1 GiB) for the OS/MariaDB, divide the rest.
    local reserve=$((mem / 5))
    ((reserve < 1024)) && reserve=1024
    NODE_MEM=$(((mem - reserve) / NODES))
    ((NODE_MEM >= 256)) || die "not enough memory (${mem} MB) for $NODES nodes; lower OT_LOCAL_NODES"
    # Modest default per CPU so that several jobs fit on a node.
    DEF_MEM=$((NODE_MEM / CPUS))
    ((DEF_MEM > 1024)) && DEF_MEM=1024

    if cgroup_v1_usable; then PROCTRACK=proctrack/cgroup; else PROCTRACK=proctrack/linuxproc; fi

    # task/none is the default anyway; newer Slurm builds drop most "none"
    # plugins, so only name it explicitly when the plugin file exists.
    TASK_PLUGIN_LINE="#TaskPlugin=task/none (default)"
    if compgen -G "/usr/lib/*/slurm-wlm/task_none.so" >/dev/null || compgen -G "/usr/lib/slurm*/task_none.so" >/dev/null; then
        TASK_PLUGIN_LINE="TaskPlugin=task/none"
    fi
}

db_password() {
    local f=$DATA_DIR/db-password
    if [[ ! -s $f ]]; then
        (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$f")
    fi
    cat "$f"
}

render_slurm_conf() {
    local ports="$FIRST_NODE_PORT" gres=""
    ((NODES > 1)) && ports="[$FIRST_NODE_PORT-$((FIRST_NODE_PORT + NODES - 1))]"
    ((GPUS > 0)) && gres=" Gres=gpu:$GPUS"
    cat <<EOF
$MARKER
# Single-machine test cluster: $NODES emulated nodes, each its own slurmd.
ClusterName=$CLUSTER
SlurmctldHost=$HOST($NET_CTLD_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Job credentials live 30 s instead of 120 s; a requeued job waits that long before it
# may start again (Slurm's rule), so the requeue path is quick to try here.
AuthInfo=cred_expire=30
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$DATA_DIR/slurmctld
SlurmdSpoolDir=$SPOOL/%n
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.%n.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info

# Process tracking: cgroup v1 when available, else plain /proc scanning.
# No task binding/confinement: all emulated nodes share the same CPUs.
ProctrackType=$PROCTRACK
$TASK_PLUGIN_LINE
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30

# Scheduling
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
GresTypes=gpu
JobRequeue=1
ReturnToService=2
KillWait=10
# A node whose slurmd stops answering is DOWN after 30 s (Slurm's default: 300 s), and its
# jobs end NODE_FAIL (requeued when they may be): the node-failure fault tests' bound.
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
# Refuse at submit time what can never run (too many nodes, too long), as sites do.
EnforcePartLimits=ALL

# Accounting through slurmdbd (sacct works)
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NET_DBD_HOST
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu

# Nodes: all on this host; slurmd -N <name> picks its line and port.
NodeName=$(node_list) NodeHostname=$HOST NodeAddr=$NET_NODE_ADDR Port=$ports Sockets=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS CPUs=$CPUS RealMemory=$NODE_MEM$gres State=UNKNOWN
# Preemption: a job in 'urgent' (PriorityTier 10) preempts jobs of debug/gpu (tier 1), which
# Slurm requeues (cancels when not requeueable). Nobody else submits to 'urgent', so debug and
# gpu schedule exactly as without it.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes=$(node_list) Default=YES MaxTime=1-00:00:00 State=UP PriorityTier=1
PartitionName=gpu Nodes=$(node_list) MaxTime=2-00:00:00 State=UP PriorityTier=1
PartitionName=urgent Nodes=$(node_list) MaxTime=1-00:00:00 State=UP PriorityTier=10
# 'shared': jobs there share cores (up to 4 a core), so three runners fit on the same 2-CPU
# emulated nodes at once (the load tests); nobody else submits to it.
PartitionName=shared Nodes=$(node_list) MaxTime=1-00:00:00 State=UP PriorityTier=1 OverSubscribe=FORCE:4
EOF
}

render_gres_conf() {
    echo "$MARKER"
    echo "# Fake GPUs: /dev/ot-fake-nvidiaN are symlinks to /dev/null."
    echo "AutoDetect=off"
    if ((GPUS == 1)); then
        echo "NodeName=$(node_list) Name=gpu File=/dev/ot-fake-nvidia0"
    elif ((GPUS > 1)); then
        echo "NodeName=$(node_list) Name=gpu File=/dev/ot-fake-nvidia[0-$((GPUS - 1))]"
    fi
}

render_cgroup_conf() {
    cat <<EOF
$MARKER
# Only used for proctrack/cgroup (cgroup v1 hosts); no resource constraints.
CgroupPlugin=autodetect
IgnoreSystemd=yes
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
}

render_slurmdbd_conf() {
    cat <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$(db_password)
StorageLoc=$DB_NAME
EOF
}

config_differs() {
    [[ ! -e $ETC/slurm.conf || $(<"$ETC/slurm.conf") != "$(render_slurm_conf)" ]] ||
        [[ ! -e $ETC/gres.conf || $(<"$ETC/gres.conf") != "$(render_gres_conf)" ]]
}
# install_file <path> <mode> <content>: write only if different; keep a one-time
# backup of a file that this script did not write.
install_file() {
    local path=$1 mode=$2 content=$3
    if [[ -e $path ]] && [[ $(<"$path") == "$content" ]]; then
        chmod "$mode" "$path"
        return 0
    fi
    if [[ -e $path ]] && ! grep -qF "$MARKER" "$path" && [[ ! -e $path.before-ot-hpc ]]; then
        cp -p "$path" "$path.before-ot-hpc"
        say "backed up existing $path to $path.before-ot-hpc"
    fi
    (umask 077 && printf '%s\n' "$content" >"$path.tmp.$$")
    chmod "$mode" "$path.tmp.$$"
    mv -f "$path.tmp.$$" "$path"
}

write_configs() {
    mkdir -p "$ETC"
    install_file "$ETC/slurm.conf" 644 "$(render_slurm_conf)"
    install_file "$ETC/gres.conf" 644 "$(render_gres_conf)"
    install_file "$ETC/slurmdbd.conf" 600 "$(render_slurmdbd_conf)"
    if [[ $PROCTRACK == proctrack/cgroup ]]; then
        install_file "$ETC/cgroup.conf" 644 "$(render_cgroup_conf)"
    elif [[ -e $ETC/cgroup.conf ]] && grep -qF "$MARKER" "$ETC/cgroup.conf"; then
        rm -f "$ETC/cgroup.conf" # linuxproc: no cgroup.conf needed
    fi
}

prepare_dirs() {
    local n i
    mkdir -p "$RUN_DIR" "$DATA_DIR/slurmctld" "$LOG_DIR"
    chmod 700 "$DATA_DIR"
    for n in $(node_names); do mkdir -p "$SPOOL/$n"; done
    for ((i = 0; i < GPUS; i++)); do ln -sfn /dev/null "/dev/ot-fake-nvidia$i"; done
    # munge and mariadb runtime dirs (normally created by their systemd units)
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    install -d -o mysql -g mysql -m 0755 /run/mysqld
}

# ----------------------------------------------------------------------------
# Starting daemons
# ----------------------------------------------------------------------------
# launch <name> <command...>: run in background, own session, immune to SIGHUP.
# In a non-interactive script the background child is not a process-group
# leader, so setsid and nohup just exec: $! is the daemon's own pid.
# Output: munged/mariadbd -> <name>.log. Slurm daemons write their own
# timestamped <name>.log (LogFile=...) and copy it to stderr in -D mode; that
# copy goes to <name>.stderr, which also catches errors printed before the
# log file is opened (e.g. a bad slurm.conf).
launch() {
    local name=$1 out
    shift
    case $name in slurm*) out=$LOG_DIR/$name.stderr ;; *) out=$LOG_DIR/$name.log ;; esac
    printf -- '----- %s: %s\n' "$(date '+%F %T')" "$*" >>"$out"
    setsid nohup "$@" </dev/null >>"$out" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
}

# Refuse to start a daemon whose TCP port is already taken by someone else.
port_free() { ! tcp_open "$1" || die "port $1 is already in use (another Slurm? check 'ss -ltnp'); cannot start $2"; }

# Before starting daemon $1: if it already runs under our pid file, return 1
# (skip). If a copy we did not start runs, stop with a clear error. Otherwise
# remove stale pid files (Slurm daemons may signal the pid they find there).
need_start() {
    local name=$1 own pid
    our_pid "$name" >/dev/null && return 1
    rm -f "$RUN_DIR/$name.pid"
    own=$(own_pidfile "$name")
    pid=$(read_pid "$own")
    # shellcheck disable=SC2046
    if pid_is "$pid" $(exe_names "$name"); then
        die "$name is already running (pid $pid) but was not started by this script; stop it first (e.g. 'systemctl stop ${name%%.*}')"
    fi
    rm -f "$own"
    return 0
}

start_munged() {
    need_start munged || return 0
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating munge key"
        if have mungekey; then
            mungekey --create --keyfile=/etc/munge/munge.key
        elif have create-munge-key; then
            create-munge-key -f
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    # setpriv execs (no extra process), so the recorded pid is munged's.
    launch munged setpriv --reuid=munge --regid=munge --init-groups munged -F
    wait_for munge 10 munge -n ||
        fail_start "munged did not come up"
}

MARIADB_CLIENT=""
mysql_root() { "$MARIADB_CLIENT" --protocol=socket -uroot "$@"; }

start_mariadbd() {
    local server="" admin
    MARIADB_CLIENT=$(command -v mariadb || command -v mysql) || die "MariaDB client not found"
    need_start mariadbd || return 0
    server=$(command -v mariadbd || command -v mysqld || true)
    [[ -z $server && -x /usr/sbin/mariadbd ]] && server=/usr/sbin/mariadbd
    [[ -z $server && -x /usr/sbin/mysqld ]] && server=/usr/sbin/mysqld
    [[ -n $server ]] || die "mariadbd not found"
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        say "initialising MariaDB data directory /var/lib/mysql"
        local init
        init=$(command -v mariadb-install-db || command -v mysql_install_db) ||
            die "mariadb-install-db not found"
        "$init" --user=mysql --datadir=/var/lib/mysql --skip-test-db \
            --auth-root-authentication-method=socket >>"$LOG_DIR/mariadbd.log" 2>&1 ||
            fail_start "MariaDB datadir initialisation failed"
    fi
    # Unix socket only: no TCP port is opened.
    launch mariadbd "$server" --user=mysql --skip-networking \
        --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid
    admin=$(command -v mariadb-admin || command -v mysqladmin)
    wait_for mariadb "$READY_TIMEOUT" "$admin" --protocol=socket -uroot ping ||
        fail_start "mariadbd did not come up"
}

# The database must exist before slurmdbd's first start (otherwise its MariaDB
# client fails with error 5027). slurmdbd logs in as a dedicated user with a
# password kept in $DATA_DIR/db-password (and in slurmdbd.conf, mode 600).
setup_database() {
    local pw
    pw=$(db_password)
    mysql_root <<EOF || fail_start "cannot set up database $DB_NAME (is MariaDB root reachable via the unix socket?)"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pw';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
EOF
}

start_slurmdbd() {
    need_start slurmdbd || return 0
    port_free "$DBD_PORT" slurmdbd
    launch slurmdbd slurmdbd -D
    wait_for slurmdbd "$READY_TIMEOUT" tcp_open "$DBD_PORT" ||
        fail_start "slurmdbd did not open port $DBD_PORT"
}

# Register cluster, account and root's default account (idempotent).
setup_accounting() {
    local q
    q=$(sacctmgr -n -P show assoc where cluster=$CLUSTER account=$CLUSTER user=root format=user 2>/dev/null || true)
    if [[ $q == root* ]] && [[ $(sacctmgr -n -P show user root format=defaultaccount 2>/dev/null) == "$CLUSTER" ]]; then
        return 0
    fi
    say "registering cluster '$CLUSTER' and account '$CLUSTER' in accounting"
    if ! grep -qx "$CLUSTER" <<<"$(sacctmgr -n -P show cluster format=cluster 2>/dev/null)"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail_start "sacctmgr add cluster failed"
    fi
    if ! grep -qx "$CLUSTER" <<<"$(sacctmgr -n -P show account "$CLUSTER" format=account 2>/dev/null)"; then
        sacctmgr -i add account "$CLUSTER" cluster="$CLUSTER" description="ot-hpc local" organization=ot-hpc >/dev/null ||
            fail_start "sacctmgr add account failed"
    fi
    q=$(sacctmgr -n -P show assoc where cluster=$CLUSTER account=$CLUSTER user=root format=user 2>/dev/null || true)
    if [[ $q != root* ]]; then
        sacctmgr -i add user root account="$CLUSTER" cluster="$CLUSTER" >/dev/null ||
            fail_start "sacctmgr add user root failed"
    fi
    sacctmgr -i modify user root set defaultaccount="$CLUSTER" >/dev/null 2>&1 || true
}

start_slurmctld() {
    need_start slurmctld || return 0
    port_free "$CTLD_PORT" slurmctld
    launch slurmctld slurmctld -D
    wait_for slurmctld "$READY_TIMEOUT" ctld_up ||
        fail_start "slurmctld did not answer 'scontrol ping'"
}

start_slurmds() {
    local n
    for n in $(node_names); do
        need_start "slurmd.$n" || continue
        port_free "$((FIRST_NODE_PORT + ${n#n} - 1))" "slurmd.$n"
        net_exec_for "$(net_ns_of "$n")" # separate hosts: in the node's namespace
        launch "slurmd.$n" "${NET_EXEC[@]}" slurmd -D -N "$n"
    done
}

# "n1 idle" lines, one per node (sinfo -N lists a node once per partition).
node_states() { timeout 10 sinfo -h -N -o '%N %t' 2>/dev/null | sort -u; }

cluster_ready() {
    local states n st ok=0
    ctld_up || return 1
    states=$(node_states) || return 1
    for n in $(node_names); do
        st=$(awk -v n="$n" '$1 == n { print $2 }' <<<"$states")
        # idle is the goal; mix/alloc/comp means up and already running jobs.
        [[ $st =~ ^(idle|mix|alloc|comp|plnd)$ ]] && ok=$((ok + 1))
    done
    ((ok == NODES))
}

wait_cluster_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT)) resumed=0 down
    until cluster_ready; do
        ((SECONDS < deadline)) || {
            scontrol ping >&2 || true
            sinfo -N -l >&2 || true
            sinfo -R >&2 || true
            fail_start "cluster not ready after ${READY_TIMEOUT}s"
        }
        # Nodes that registered but stayed DOWN after a restart (no '*' = responding):
        # ReturnToService=2 usually handles this; resume them once as a fallback.
        if ((!resumed && SECONDS > deadline - READY_TIMEOUT + 5)); then
            down=$(node_states | awk '$2 == "down" { print $1 }' | paste -sd, -)
            if [[ -n $down ]]; then
                say "resuming DOWN node(s): $down"
                scontrol update nodename="$down" state=resume || true
                resumed=1
            fi
        fi
        sleep 0.2
    done
}

# ----------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------
all_up() {
    local d
    for d in $(all_daemons); do our_pid "$d" >/dev/null || return 1; done
    return 0
}

cmd_status() {
    local d pid rc=0 extra
    detect_nodes_from_conf
    for d in $(all_daemons); do
        if pid=$(our_pid "$d"); then
            printf '  %-12s pid %-8s alive\n' "$d" "$pid"
        else
            pid=$(read_pid "$RUN_DIR/$d.pid")
            printf '  %-12s pid %-8s dead\n' "$d" "${pid:--}"
            rc=3
        fi
    done
    net_status
    if ctld_up; then
        timeout 10 sinfo || rc=3
        extra=$(timeout 10 squeue -h 2>/dev/null | wc -l || true)
        echo "  jobs in queue: ${extra:-?}"
    else
        echo "  slurmctld is not responding (scontrol ping)"
        rc=3
    fi
    return $rc
}

# status/stop act on what is configured: without OT_LOCAL_NODES, take the node
# count from the slurm.conf we wrote (start always uses OT_LOCAL_NODES/default).
# Left-over slurmd pid files are always included (see all_daemons).
detect_nodes_from_conf() {
    [[ -z ${OT_LOCAL_NODES:-} && -r $ETC/slurm.conf ]] || return 0
    grep -qF "$MARKER" "$ETC/slurm.conf" || return 0
    local line
    line=$(grep -m1 '^NodeName=n' "$ETC/slurm.conf" || true)
    if [[ $line =~ ^NodeName=n\[1-([0-9]+)\] ]]; then
        NODES=${BASH_REMATCH[1]}
    elif [[ $line == "NodeName=n1 "* ]]; then
        NODES=1
    fi
    return 0
}

cmd_start() {
    [[ $EUID -eq 0 ]] || die "must run as root (try: sudo bash $0 start)"
    install_packages
    local t0
    t0=$(now)
    detect_slurm_version
    compute_layout
    net_choose_mode
    # Slurm daemons still running from an earlier start must not be mixed with
    # a different configuration (e.g. OT_LOCAL_NODES changed): ask for restart.
    local d slurm_running=0
    for d in $(all_daemons); do
        [[ $d == slurm* ]] && our_pid "$d" >/dev/null && slurm_running=$((slurm_running + 1))
    done
    if all_up; then
        config_differs && warn "the running cluster uses a different configuration; run '$0 restart' to apply the new one"
        config_differs || net_up
        say "already running"
        cmd_status
        return
    fi
    if ((slurm_running)) && config_differs; then
        die "$slurm_running Slurm daemon(s) are running with a different configuration (OT_LOCAL_NODES/OT_LOCAL_GPUS changed?); run '$0 restart'"
    fi
    prepare_dirs
    write_configs
    say "Slurm $SLURM_MAJOR.$(printf %02d "$SLURM_MINOR") on $HOST: $NODES node(s) x ${CPUS} CPUs, ${NODE_MEM} MB, $GPUS fake GPU(s); $PROCTRACK"
    net_up
    start_munged
    start_mariadbd
    setup_database
    start_slurmdbd
    setup_accounting
    start_slurmctld
    start_slurmds
    wait_cluster_ready
    say "cluster ready in $(elapsed_since "$t0") s (logs: $LOG_DIR, pids: $RUN_DIR)"
    timeout 10 sinfo || true
}

# stop_daemons <timeout> <name...>: SIGTERM all, wait, SIGKILL leftovers.
STOPPED_PIDS=()
stop_daemons() {
    local timeout=$1 d pid pids=() names=()
    shift
    for d in "$@"; do
        if pid=$(our_pid "$d"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$d")
        fi
    done
    ((${#pids[@]})) || return 0
    say "stopping ${names[*]}"
    local deadline=$((SECONDS + timeout)) i alive
    while :; do
        alive=0
        for i in "${!pids[@]}"; do
            # shellcheck disable=SC2046
            pid_is "${pids[$i]}" $(exe_names "${names[$i]}") && alive=1
        done
        ((alive)) || break
        if ((SECONDS >= deadline)); then
            for i in "${!pids[@]}"; do
                # shellcheck disable=SC2046
                if pid_is "${pids[$i]}" $(exe_names "${names[$i]}"); then
                    warn "${names[$i]} (pid ${pids[$i]}) did not exit after ${timeout}s; sending SIGKILL"
                    kill -KILL "${pids[$i]}" 2>/dev/null || true
                fi
            done
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    STOPPED_PIDS+=("${pids[@]}")
}

# Exited daemons are reparented to init; give it up to 3 s to reap them so that
# `ps` right after stop shows no <defunct> entries (cosmetic; some minimal
# container/VM inits reap lazily).
wait_reaped() {
    local i pid left
    for ((i = 0; i < 30; i++)); do
        left=0
        for pid in "${STOPPED_PIDS[@]}"; do [[ -e /proc/$pid ]] && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
}

cmd_stop() {
    [[ $EUID -eq 0 ]] || die "must run as root (try: sudo bash $0 stop)"
    local d own pid slurmds=()
    local NODES=$NODES # restart: keep the detected count out of the following start
    detect_nodes_from_conf
    for d in $(all_daemons); do [[ $d == slurmd.* ]] && slurmds+=("$d"); done
    # Reverse start order; slurmds together. Running job steps (slurmstepd)
    # are left alone: a later start reconnects to them.
    ((${#slurmds[@]})) && stop_daemons 15 "${slurmds[@]}"
    stop_daemons 30 slurmctld
    stop_daemons 30 slurmdbd
    stop_daemons 60 mariadbd
    stop_daemons 10 munged
    # Remove our pid files and stale pid files left by the daemons themselves.
    for d in $(all_daemons); do
        our_pid "$d" >/dev/null || rm -f "$RUN_DIR/$d.pid"
        own=$(own_pidfile "$d")
        pid=$(read_pid "$own")
        # shellcheck disable=SC2046
        [[ -e $own ]] && ! pid_is "$pid" $(exe_names "$d") && rm -f "$own"
    done
    for own in /run/slurmd.*.pid; do
        [[ -e $own ]] || continue
        pid_is "$(read_pid "$own")" slurmd || rm -f "$own"
    done
    ((${#STOPPED_PIDS[@]} == 0)) || wait_reaped
    net_down "$(dirname "${BASH_SOURCE[0]}")/local-login-sshd.sh"
    say "stopped"
}

# One daemon of a running cluster (slurmctld or slurmdbd), for the fault tests: stop it,
# or start it again and wait until it answers. Idempotent: stopping a stopped daemon and
# starting a running one do nothing. The configuration is the one `start` wrote.
DAEMONS_ALONE=(slurmctld slurmdbd)
one_daemon() {
    local action=$1 name=${2:-}
    [[ $EUID -eq 0 ]] || die "must run as root"
    [[ " ${DAEMONS_ALONE[*]} " == *" $name "* ]] || die "usage: $0 $action slurmctld|slurmdbd"
    if [[ $action == stop-daemon ]]; then
        stop_daemons 30 "$name"
        ((${#STOPPED_PIDS[@]} == 0)) || wait_reaped
        rm -f "$RUN_DIR/$name.pid"
        say "$name stopped"
        return
    fi
    grep -qF "$MARKER" "$ETC/slurm.conf" 2>/dev/null || die "no cluster configured here: run '$0 start'"
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    "start_$name"
    if [[ $name == slurmdbd ]]; then
        # slurmctld reconnects to slurmdbd by itself; wait until accounting answers.
        wait_for sacct "$READY_TIMEOUT" timeout 10 sacct -n -X -S now ||
            die "slurmdbd runs but sacct does not answer"
    fi
    say "$name running (pid $(our_pid "$name"))"
}

# One emulated node dying and coming back, for the fault tests (separate hosts only: a
# node is its network namespace). stop-node: SIGKILL its slurmd and every process in its
# namespace (job steps, node agents, Ray: what a node's power loss takes away); slurmctld
# marks it DOWN after SlurmdTimeout. start-node: its slurmd again, then wait until the node
# is idle or busy (ReturnToService=2 brings a DOWN node back). Both idempotent.
one_node() {
    local action=$1 node=${2:-} ns pid pids
    [[ $EUID -eq 0 ]] || die "must run as root"
    detect_nodes_from_conf
    [[ $node =~ ^n[0-9]+$ ]] && ((${node#n} >= 1 && ${node#n} <= NODES)) ||
        die "usage: $0 $action n1..n$NODES"
    net_read_env
    [[ $NET_MODE == separate ]] || die "$action needs separate hosts (OT_LOCAL_NETWORK=separate): in loopback mode a node's processes cannot be told apart"
    ns=$(net_ns_of "$node")
    if [[ $action == stop-node ]]; then
        if pid=$(our_pid "slurmd.$node"); then kill -KILL "$pid" 2>/dev/null || true; fi
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
        wait_for "$node's processes" 10 bash -c "[[ -z \$(ip netns pids $ns) ]]" ||
            warn "processes left in $ns: $(ip netns pids "$ns" | paste -sd' ' -)"
        rm -f "$RUN_DIR/slurmd.$node.pid" "$(own_pidfile "slurmd.$node")"
        say "$node stopped (slurmd and $(wc -w <<<"$pids") process(es) killed)"
        return
    fi
    grep -qF "$MARKER" "$ETC/slurm.conf" 2>/dev/null || die "no cluster configured here: run '$0 start'"
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    if need_start "slurmd.$node"; then
        net_exec_for "$ns"
        launch "slurmd.$node" "${NET_EXEC[@]}" slurmd -D -N "$node"
    fi
    wait_for "$node" "$((READY_TIMEOUT * 2))" node_usable "$node" ||
        die "$node did not come back: $(node_states | grep "^$node " || true)"
    say "$node running (pid $(our_pid "slurmd.$node")), $(node_states | awk -v n="$node" '$1 == n { print $2 }')"
}
# Node $1 registered and takes jobs (idle, or busy with jobs: not down/drain/unknown).
node_usable() { [[ $(node_states | awk -v n="$1" '$1 == n { print $2 }') =~ ^(idle|mix|alloc)$ ]]; }

case "${1:-}" in
    stop-daemon | start-daemon) one_daemon "$1" "${2:-}" ;;
    stop-node | start-node) one_node "$1" "${2:-}" ;;
    install) # only the Debian packages; starts nothing
        [[ $EUID -eq 0 ]] || die "must run as root (try: sudo bash $0 install)"
        install_packages
        ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) net_keep_mode && cmd_stop && cmd_start ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status|restart|install|stop-daemon D|start-daemon D|stop-node nK|start-node nK   (env: OT_LOCAL_NODES=3 OT_LOCAL_GPUS=4 OT_LOCAL_NETWORK=auto|separate|loopback)" >&2
        exit 2
        ;;
esac
