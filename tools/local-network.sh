# shellcheck shell=bash
# tools/local-network.sh -- the local cluster's networks: separate hosts, or one loopback stack.
#
# Sourced by tools/local-cluster.sh (which builds and removes the networks) and by
# tools/local-login-sshd.sh (which only reads them); never run on its own. Expects the
# sourcing script's say/die (warn is defined here when missing).
#
# OT_LOCAL_NETWORK chooses the mode:
#   separate   every emulated host has its own network namespace (Linux netns + veth,
#              from iproute2; processes are entered with nsenter):
#
#     root namespace: slurmctld, slurmdbd, munged, mariadbd, the user's shell
#        | 10.77.0.1/16 on bridge ot-fabric          (the interconnect, "fabric")
#        +-- ot-n1  10.77.0.11  slurmd n1 -> its jobs, srun steps, Ray
#        +-- ot-n2  10.77.0.12  slurmd n2 ...            (node nK: 10.77.0.(10+K))
#        +-- ot-n3  10.77.0.13  slurmd n3
#        +-- ot-login 10.77.0.2  sshd :2222 (the tunnel's login node)
#              | 10.77.1.1/24 -- 10.77.1.2/24  veth inet0 (forwarding off in ot-login)
#              +-- ot-internet  tools/local-internet.py :17080 ("the internet")
#
#              Compute namespaces have a route to the fabric /24 only: the internet
#              link is unreachable from them except through an SSH tunnel to ot-login.
#              The root namespace's /16 keeps every 10.77.x.x packet on the bridge, so
#              nothing of this ever leaves the machine.
#   loopback   the old single stack: node nK is 127.0.0.(K+1), ot-login and ot-internet
#              are 127.0.0.1 (the sshd on 127.0.0.1:2222, the internet service too).
#   auto       (default) the mode of a cluster that is already configured (network.env)
#              or running; else separate where network namespaces can be created, else
#              loopback, with one line saying why.
#
# Both modes write the names into /etc/hosts (a marked block) and the mode and addresses
# into $NET_ENV (shell syntax, read by the tests and tools). Stop removes every
# namespace, veth, the bridge, the hosts block and $NET_ENV, and nothing else.

NET_STATE_DIR=${OT_LOCAL_NET_DIR:-/var/lib/ot-hpc-local}
NET_ENV=$NET_STATE_DIR/network.env
NET_RUN_DIR=/run/ot-hpc-local-network        # the internet service's pid file
NET_LOG=/var/log/ot-hpc-local-cluster/internet.log
NET_FABRIC=10.77.0                           # .1 controller, .2 login node, .(10+K) node nK
NET_INET=10.77.1                             # .1 the login node's second link, .2 the internet
NET_BRIDGE=ot-fabric
NET_LOGIN=ot-login                           # host name = namespace name
NET_INTERNET=ot-internet
NET_INTERNET_PORT=${OT_LOCAL_INTERNET_PORT:-17080}
NET_HOSTS=${OT_LOCAL_HOSTS_FILE:-/etc/hosts}
NET_HOSTS_BEGIN="# BEGIN ot-hpc local cluster (tools/local-network.sh) -- removed by stop"
NET_HOSTS_END="# END ot-hpc local cluster"
NET_INTERNET_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/local-internet.py"

declare -F warn >/dev/null || warn() { printf 'WARNING: %s\n' "$*" >&2; }

# Set by net_choose_mode (local-cluster.sh) or net_read_env (everyone else).
NET_MODE="" NET_WHY="" NET_CTLD_ADDR="" NET_DBD_HOST="" NET_NODE_ADDR="" NET_LOGIN_ADDR="" NET_INTERNET_ADDR=""

net_node_addr() {  # the address of node n$1 in mode $NET_MODE
    if [[ $NET_MODE == separate ]]; then echo "$NET_FABRIC.$((10 + $1))"; else echo "127.0.0.$(($1 + 1))"; fi
}
net_ns_of() { echo "ot-$1"; }  # node nK -> namespace ot-nK
net_ns_path() { echo "/run/netns/$1"; }

# The addresses of the chosen mode (slurm.conf uses NET_CTLD_ADDR, NET_DBD_HOST, NET_NODE_ADDR).
# shellcheck disable=SC2034  # NET_DBD_HOST, NET_NODE_ADDR: read by local-cluster.sh
net_set_addresses() {
    local i list=()
    if [[ $NET_MODE == separate ]]; then
        NET_CTLD_ADDR=$NET_FABRIC.1 NET_DBD_HOST=$NET_FABRIC.1
        NET_LOGIN_ADDR=$NET_FABRIC.2 NET_INTERNET_ADDR=$NET_INET.2
        for ((i = 1; i <= ${NODES:-3}; i++)); do list+=("$(net_node_addr "$i")"); done
        NET_NODE_ADDR=$(IFS=,; echo "${list[*]}")
    else  # exactly the single-stack values of before
        NET_CTLD_ADDR=127.0.0.1 NET_DBD_HOST=localhost NET_NODE_ADDR=127.0.0.1
        NET_LOGIN_ADDR=127.0.0.1 NET_INTERNET_ADDR=127.0.0.1
    fi
}

# Why network namespaces cannot be used here (one line), or nothing when they can.
net_cannot_separate() {
    local probe="ot-probe-$$" out
    [[ $EUID -eq 0 ]] || { echo "not root"; return; }
    command -v nsenter >/dev/null || { echo "nsenter (util-linux) is missing"; return; }
    if ! command -v ip >/dev/null; then
        apt-get install -y -q --no-install-recommends iproute2 >/dev/null 2>&1 ||
            { echo "ip (iproute2) is missing and could not be installed"; return; }
    fi
    out=$(ip netns add "$probe" 2>&1) || { echo "'ip netns add' failed: ${out//$'\n'/ }"; return; }
    out=$({ ip -n "$probe" link add otp0 type veth peer name otp1 &&
        ip -n "$probe" link add otpbr type bridge && nsenter --net="$(net_ns_path "$probe")" true; } 2>&1) ||
        out="veth/bridge/nsenter failed: ${out//$'\n'/ }"
    ip netns del "$probe" 2>/dev/null || true
    [[ $out != *failed:* ]] || echo "$out"
}

# Choose NET_MODE (see the header) and set the addresses; changes nothing on the machine.
net_choose_mode() {
    local want=${OT_LOCAL_NETWORK:-auto} why
    case $want in
        separate | loopback | auto) ;;
        *) die "OT_LOCAL_NETWORK must be separate, loopback or auto (got '$want')" ;;
    esac
    NET_MODE=$want NET_WHY="OT_LOCAL_NETWORK=$want"
    if [[ $want == auto ]]; then
        NET_MODE=$(net_env_value OT_LOCAL_NETWORK)
        if [[ $NET_MODE == separate || $NET_MODE == loopback ]]; then
            NET_WHY="the mode this cluster was started in ($NET_ENV); OT_LOCAL_NETWORK=... restart changes it"
        elif declare -F our_pid >/dev/null && our_pid slurmctld >/dev/null; then
            NET_MODE=loopback NET_WHY="the running cluster was started without separate hosts; OT_LOCAL_NETWORK=separate restart switches"
        elif why=$(net_cannot_separate) && [[ -n $why ]]; then
            NET_MODE=loopback NET_WHY="network namespaces cannot be created here: $why"
        else
            NET_MODE=separate NET_WHY="network namespaces work here"
        fi
    else
        net_refuse_other_running_mode "$want"
        if [[ $want == separate ]] && why=$(net_cannot_separate) && [[ -n $why ]]; then
            die "OT_LOCAL_NETWORK=separate, but $why (use OT_LOCAL_NETWORK=loopback)"
        fi
    fi
    net_set_addresses
}

# An explicit mode never silently meets a running cluster of the other mode.
net_refuse_other_running_mode() {
    local running
    running=$(net_env_value OT_LOCAL_NETWORK)
    [[ -z $running && -n $(net_our_namespaces) ]] && running=separate
    [[ -n $running ]] || running=loopback
    if [[ $running != "$1" ]] && declare -F our_pid >/dev/null && our_pid slurmctld >/dev/null; then
        die "the cluster is running with OT_LOCAL_NETWORK=$running; switch with: OT_LOCAL_NETWORK=$1 bash $0 restart"
    fi
}

net_env_value() {  # a value from $NET_ENV (nothing when it or the key is missing)
    [[ -r $NET_ENV ]] || return 0
    sed -n "s/^$1=//p" "$NET_ENV" | tail -n1 | tr -d "'\""
}

# For the readers (the sshd script): the mode in $NET_ENV, loopback when there is none.
net_read_env() {
    NET_MODE=$(net_env_value OT_LOCAL_NETWORK)
    [[ -n $NET_MODE ]] || NET_MODE=loopback
    net_set_addresses
}

# NET_EXEC: the command prefix that runs a program inside namespace $1 (empty in loopback
# mode). nsenter enters only the network namespace (`ip netns exec` would remount /sys and
# hide the cgroup v1 hierarchies slurmd needs) and execs, so the pid stays the program's.
NET_EXEC=()
net_exec_for() {
    NET_EXEC=()
    if [[ $NET_MODE == separate ]]; then NET_EXEC=(nsenter "--net=$(net_ns_path "$1")" --); fi
}

# Keep the mode of the cluster being restarted, unless OT_LOCAL_NETWORK says otherwise.
net_keep_mode() {
    local mode
    [[ -z ${OT_LOCAL_NETWORK:-} ]] || return 0
    mode=$(net_env_value OT_LOCAL_NETWORK)
    if [[ -n $mode ]]; then export OT_LOCAL_NETWORK=$mode; fi
}

# ---- building the namespaces (separate mode) --------------------------------------------
net_ns_add() {
    [[ -e $(net_ns_path "$1") ]] || ip netns add "$1"
    ip -n "$1" link set lo up
}

# net_fabric_join <namespace> <address>: a veth from the bridge into the namespace (fab0).
net_fabric_join() {
    local ns=$1 addr=$2 root_end="otv-${1#ot-}"
    net_ns_add "$ns"
    ip link show "$root_end" >/dev/null 2>&1 ||
        ip link add "$root_end" type veth peer name fab0 netns "$ns"
    ip link set "$root_end" master "$NET_BRIDGE" up
    ip -n "$ns" addr replace "$addr/24" dev fab0
    ip -n "$ns" link set fab0 up
}

net_build_separate() {
    local i
    ip link show "$NET_BRIDGE" >/dev/null 2>&1 ||
        ip link add "$NET_BRIDGE" type bridge forward_delay 0 stp_state 0
    ip addr replace "$NET_CTLD_ADDR/16" dev "$NET_BRIDGE"
    ip link set "$NET_BRIDGE" up
    net_fabric_join "$NET_LOGIN" "$NET_LOGIN_ADDR"
    for ((i = 1; i <= NODES; i++)); do net_fabric_join "$(net_ns_of "n$i")" "$(net_node_addr "$i")"; done
    net_ns_add "$NET_INTERNET"
    ip -n "$NET_LOGIN" link show inet0 >/dev/null 2>&1 ||
        ip -n "$NET_LOGIN" link add inet0 type veth peer name inet0 netns "$NET_INTERNET"
    ip -n "$NET_LOGIN" addr replace "$NET_INET.1/24" dev inet0
    ip -n "$NET_INTERNET" addr replace "$NET_INTERNET_ADDR/24" dev inet0
    ip -n "$NET_LOGIN" link set inet0 up
    ip -n "$NET_INTERNET" link set inet0 up
    # The login node is no router: nothing from the fabric reaches the internet link.
    nsenter --net="$(net_ns_path "$NET_LOGIN")" sh -c 'echo 0 >/proc/sys/net/ipv4/ip_forward'
}

# ---- names and the state file (both modes) ------------------------------------------------
net_hosts_block() {
    local i
    if [[ $NET_MODE == separate ]]; then
        printf '%s ot-controller\n%s %s\n%s %s\n' "$NET_CTLD_ADDR" "$NET_LOGIN_ADDR" "$NET_LOGIN" \
            "$NET_INTERNET_ADDR" "$NET_INTERNET"
    else
        printf '127.0.0.1 ot-controller %s %s\n' "$NET_LOGIN" "$NET_INTERNET"
    fi
    for ((i = 1; i <= NODES; i++)); do printf '%s n%d\n' "$(net_node_addr "$i")" "$i"; done
}

# net_hosts_set [block]: replace our marked block in /etc/hosts (none: remove it). Written
# in place (it may be a bind mount) and only when it changes.
net_hosts_set() {
    local tmp
    [[ -e $NET_HOSTS ]] || return 0
    tmp=$(mktemp)
    awk -v b="$NET_HOSTS_BEGIN" -v e="$NET_HOSTS_END" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' \
        "$NET_HOSTS" >"$tmp"
    [[ -z ${1:-} ]] || printf '%s\n%s\n%s\n' "$NET_HOSTS_BEGIN" "$1" "$NET_HOSTS_END" >>"$tmp"
    cmp -s "$tmp" "$NET_HOSTS" || cat "$tmp" >"$NET_HOSTS"
    rm -f "$tmp"
}

net_write_env() {
    local i addrs=() names=() spaces=()
    for ((i = 1; i <= NODES; i++)); do
        names+=("n$i") addrs+=("$(net_node_addr "$i")")
        [[ $NET_MODE == separate ]] && spaces+=("$(net_ns_of "n$i")")
    done
    mkdir -p "$NET_STATE_DIR"
    cat >"$NET_ENV.tmp" <<EOF
# Written by tools/local-network.sh on every start of the local cluster; removed by stop.
OT_LOCAL_NETWORK=$NET_MODE
CONTROLLER_ADDR=$NET_CTLD_ADDR
LOGIN_HOST=$NET_LOGIN
LOGIN_ADDR=$NET_LOGIN_ADDR
LOGIN_NETNS=$([[ $NET_MODE == separate ]] && echo "$NET_LOGIN")
LOGIN_INTERNET_ADDR=$([[ $NET_MODE == separate ]] && echo "$NET_INET.1" || echo 127.0.0.1)
INTERNET_HOST=$NET_INTERNET
INTERNET_ADDR=$NET_INTERNET_ADDR
INTERNET_PORT=$NET_INTERNET_PORT
INTERNET_NETNS=$([[ $NET_MODE == separate ]] && echo "$NET_INTERNET")
NODES=$(IFS=,; echo "${names[*]}")
NODE_ADDRS=$(IFS=,; echo "${addrs[*]}")
NODE_NETNS=$(IFS=,; echo "${spaces[*]}")
EOF
    mv -f "$NET_ENV.tmp" "$NET_ENV"
}

# ---- the internet service -----------------------------------------------------------------
net_python() {
    local py
    for py in /usr/bin/python3 "$(command -v python3 || true)"; do
        [[ -x $py ]] && { echo "$py"; return 0; }
    done
    apt-get install -y -q --no-install-recommends python3-minimal >/dev/null 2>&1 && echo /usr/bin/python3
}
net_internet_pid() {  # the service's pid if it is ours and alive
    local pid
    pid=$(tr -dc "0-9" 2>/dev/null <"$NET_RUN_DIR/internet.pid") || return 1
    [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$NET_INTERNET_SCRIPT" &&
        echo "$pid"
}
# Is the service answering where it should, seen from where its clients are (ot-login)?
net_internet_answers() {
    net_exec_for "$NET_LOGIN"
    "${NET_EXEC[@]}" bash -c "exec 3<>/dev/tcp/$NET_INTERNET_ADDR/$NET_INTERNET_PORT" 2>/dev/null
}
net_start_internet() {
    local py i pid
    if pid=$(net_internet_pid); then
        net_internet_answers && return 0
        kill -TERM "$pid" 2>/dev/null || true  # ours, but in the other mode's place
        sleep 0.2
    fi
    py=$(net_python) || die "python3 is needed for the internet service (apt-get install python3)"
    mkdir -p "$NET_RUN_DIR" "$(dirname "$NET_LOG")"
    net_exec_for "$NET_INTERNET"
    setsid nohup "${NET_EXEC[@]}" "$py" "$NET_INTERNET_SCRIPT" --bind "$NET_INTERNET_ADDR" \
        --port "$NET_INTERNET_PORT" --name "$NET_INTERNET" </dev/null >>"$NET_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$NET_RUN_DIR/internet.pid"
    for ((i = 0; i < 100; i++)); do
        net_internet_answers && return 0
        [[ -e /proc/$pid ]] || break
        sleep 0.05
    done
    tail -n 5 "$NET_LOG" >&2 || true
    die "the internet service did not start on $NET_INTERNET_ADDR:$NET_INTERNET_PORT (log: $NET_LOG)"
}
net_stop_internet() {
    local pid i
    pid=$(net_internet_pid) || { rm -f "$NET_RUN_DIR/internet.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    rm -f "$NET_RUN_DIR/internet.pid"
}

# Slurmds that run in a namespace which is no longer ours (something deleted and a start
# re-created it): they cannot reach anything. Warn; a restart fixes it.
net_check_daemons() {
    local i pid ns
    [[ $NET_MODE == separate ]] && declare -F our_pid >/dev/null || return 0
    for ((i = 1; i <= NODES; i++)); do
        ns=$(net_ns_of "n$i")
        pid=$(our_pid "slurmd.n$i") || continue
        [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == $(stat -L -c %i "$(net_ns_path "$ns")" 2>/dev/null) ]] ||
            warn "slurmd.n$i (pid $pid) is not in namespace $ns (it was deleted behind our back?): run '$0 restart'"
    done
}

# ---- the hooks local-cluster.sh calls -------------------------------------------------------
# net_up: build the chosen mode's networks, names, state file and internet service (idempotent).
net_up() {
    if [[ $NET_MODE == separate ]]; then
        say "network: separate hosts ($NET_WHY): nodes on $NET_FABRIC.0/24 from $(net_node_addr 1), controller $NET_CTLD_ADDR, $NET_LOGIN $NET_LOGIN_ADDR, $NET_INTERNET $NET_INTERNET_ADDR:$NET_INTERNET_PORT behind $NET_LOGIN only"
    else
        say "network: loopback, one shared network stack ($NET_WHY)"
    fi
    [[ $NET_MODE != separate ]] || net_build_separate
    net_hosts_set "$(net_hosts_block)"
    net_write_env
    net_start_internet
    net_check_daemons
}

# Our namespaces that exist now: ot-n<K>, ot-login, ot-internet (never any other).
net_our_namespaces() {
    ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E "^(ot-n[0-9]+|$NET_LOGIN|$NET_INTERNET)\$" || true
}

# net_down <sshd script>: stop the internet service (and the login sshd, when it runs in our
# namespace), remove namespaces, veths, bridge, hosts block and state file.
net_down() {
    local ns pids link
    net_stop_internet
    if [[ -e $(net_ns_path "$NET_LOGIN") && -n ${1:-} && -f $1 ]]; then bash "$1" stop >/dev/null || true; fi
    for ns in $(net_our_namespaces); do
        pids=$(ip netns pids "$ns" 2>/dev/null | paste -sd' ' -)
        [[ -z $pids ]] || warn "processes still in namespace $ns lose their network: $pids"
        ip netns del "$ns" || warn "cannot delete namespace $ns"
    done
    if command -v ip >/dev/null; then
        for link in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//' | grep -E '^otv-(n[0-9]+|login)$'); do
            ip link del "$link" 2>/dev/null || true
        done
        ip link show "$NET_BRIDGE" >/dev/null 2>&1 && ip link del "$NET_BRIDGE"
    fi
    net_hosts_set ""
    rm -f "$NET_ENV"
}

# One status line (reads the state file only).
net_status() {
    local mode
    mode=$(net_env_value OT_LOCAL_NETWORK)
    if [[ -z $mode ]]; then echo "  network: not set up"; return 0; fi
    NET_MODE=$mode
    net_set_addresses
    printf '  network: %s; namespaces: %s; internet service %s\n' "$mode" \
        "$(net_our_namespaces | paste -sd, - | sed 's/^$/none/')" \
        "$(net_internet_pid >/dev/null && echo "alive on $NET_INTERNET_ADDR:$NET_INTERNET_PORT" || echo dead)"
    net_check_daemons
}
