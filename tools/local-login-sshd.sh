#!/usr/bin/env bash
# tools/local-login-sshd.sh -- an sshd playing the local cluster's "login node".
#
# Usage (as root):  bash tools/local-login-sshd.sh start|stop|status|install
#
# Jobs on the local Slurm cluster (tools/local-cluster.sh) open their SSH SOCKS tunnel
# to this sshd, exactly as JSC jobs do to a login node. `start` installs Debian's
# openssh-server if needed (a policy-rc.d exiting 101 keeps postinst from starting the
# system sshd), writes its own config, host key and client key under $STATE_DIR, and
# runs `sshd -D` as root on 127.0.0.1:$PORT in its own session (pid in $PID_FILE).
# The client key ($STATE_DIR/id_ed25519) is authorized for root; $STATE_DIR/known_hosts
# holds this sshd's host key. `stop` ends exactly the pid in the pid file.
# With separate hosts (tools/local-network.sh; start the local cluster first) the sshd
# runs inside the login node's namespace ot-login, on its fabric address (10.77.0.2).
set -euo pipefail

PORT="${OT_LOCAL_SSHD_PORT:-2222}"
STATE_DIR="${OT_LOCAL_SSHD_DIR:-/var/lib/ot-hpc-local/ssh}"
RUN_DIR="${OT_LOCAL_SSHD_RUN_DIR:-/run/ot-hpc-local-sshd}"
PID_FILE=$RUN_DIR/sshd.pid
LOG_FILE=/var/log/ot-hpc-local-sshd.log
CONFIG=$STATE_DIR/sshd_config
HOST_KEY=$STATE_DIR/ssh_host_ed25519_key
CLIENT_KEY=$STATE_DIR/id_ed25519
AUTHORIZED=$STATE_DIR/authorized_keys
KNOWN_HOSTS=$STATE_DIR/known_hosts

say() { printf '[local-sshd] %s\n' "$*"; }
die() { printf '[local-sshd] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/local-network.sh
source "$(dirname "${BASH_SOURCE[0]}")/local-network.sh"
net_read_env  # LISTEN: 127.0.0.1, or ot-login's address with separate hosts
LISTEN=$NET_LOGIN_ADDR

read_pid() { [[ -r $PID_FILE ]] && head -c 32 "$PID_FILE" | tr -dc '0-9' || true; }
# Is the pid in the pid file a live sshd started with OUR config (`-f $CONFIG`), not the
# system sshd, another sshd or a recycled pid of something else?
running() {
    local pid exe
    pid=$(read_pid)
    [[ -n $pid ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [[ ${exe% (deleted)} == */sshd ]] || return 1
    has_our_config "$pid"
}

# Does /proc/<pid>/cmdline hold `-f $CONFIG`? sshd rewrites its title to one string
# ("sshd: /usr/sbin/sshd -D -e -f <config> [listener] ..."), so NULs become spaces and the
# match is on word boundaries.
has_our_config() {
    local line
    line=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    [[ " $line " == *" -f $CONFIG "* ]]
}

answers() {  # the port speaks SSH
    timeout 2 bash -c "exec 3<>/dev/tcp/$LISTEN/$PORT && head -c 4 <&3" 2>/dev/null | grep -q '^SSH-'
}

install_server() {
    [[ -x /usr/sbin/sshd ]] && return 0
    say "installing openssh-server"
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server >/dev/null 2>&1; then
        apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server >/dev/null
    fi
    ((created)) && rm -f "$policy"
    [[ -x /usr/sbin/sshd ]] || die "openssh-server did not install /usr/sbin/sshd"
}

# Host key entry for the client side (StrictHostKeyChecking=yes against this file), under
# the login node's address and its name (ot-login).
write_known_hosts() {
    printf '[%s]:%s,[%s]:%s %s\n' "$LISTEN" "$PORT" "$NET_LOGIN" "$PORT" "$(cut -d' ' -f1,2 "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
}

write_files() {
    mkdir -p "$STATE_DIR" "$RUN_DIR" /run/sshd
    chmod 700 "$STATE_DIR"
    [[ -f $HOST_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C ot-hpc-local-sshd -f "$HOST_KEY"
    [[ -f $CLIENT_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C ot-hpc-local-tunnel -f "$CLIENT_KEY"
    cp "$CLIENT_KEY.pub" "$AUTHORIZED"
    chmod 600 "$AUTHORIZED"
    write_known_hosts
    cat >"$CONFIG" <<CONF
# Managed by ot-hpc tools/local-login-sshd.sh -- rewritten on every start.
Port $PORT
ListenAddress $LISTEN
HostKey $HOST_KEY
PidFile none
AuthorizedKeysFile $AUTHORIZED
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
ClientAliveInterval 15
MaxStartups 100:30:200
LogLevel INFO
CONF
}

start() {
    [[ $(id -u) == 0 ]] || die "run as root"
    if running && grep -qx "ListenAddress $LISTEN" "$CONFIG" && answers; then
        write_known_hosts
        say "already running (pid $(read_pid)) on $LISTEN:$PORT"
        return 0
    fi
    running && stop  # ours, but not answering where this network mode wants it
    if [[ $NET_MODE == separate && ! -e $(net_ns_path "$NET_LOGIN") ]]; then
        die "the login node's namespace $NET_LOGIN does not exist: start the local cluster first (bash tools/local-cluster.sh start)"
    fi
    install_server
    write_files
    /usr/sbin/sshd -t -f "$CONFIG" || die "sshd rejected $CONFIG"
    rm -f "$PID_FILE"
    net_exec_for "$NET_LOGIN"
    setsid "${NET_EXEC[@]}" /usr/sbin/sshd -D -e -f "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local i
    for ((i = 0; i < 100; i++)); do
        if answers; then
            say "sshd running (pid $(read_pid)) on $LISTEN:$PORT ($NET_LOGIN); client key $CLIENT_KEY, known hosts $KNOWN_HOSTS"
            return 0
        fi
        running || break
        sleep 0.05
    done
    tail -n 5 "$LOG_FILE" >&2 || true
    die "sshd did not start (log: $LOG_FILE)"
}

stop() {
    local pid i
    pid=$(read_pid)
    if ! running; then
        say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        running || break
        sleep 0.1
    done
    running && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    say "stopped (pid $pid)"
}

status() {
    if running && answers; then
        say "running (pid $(read_pid)) on $LISTEN:$PORT"
    else
        say "not running"
        return 1
    fi
}

case ${1:-} in
    install) [[ $(id -u) == 0 ]] || die "run as root"; install_server ;;  # the package only
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: bash tools/local-login-sshd.sh start|stop|status|install" >&2; exit 2 ;;
esac
