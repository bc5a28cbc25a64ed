#!/usr/bin/env bash
# tools/debian13-lane.sh -- the Debian 13 CI lane: the test suite on Slurm 24.11 / Python 3.13.
#
#   bash tools/debian13-lane.sh run [PYTEST ARGS]  build the chroot if missing or stale, copy
#                                                 this working tree into it, run
#                                                 `bash tools/dev.sh test` there; exit = pytest's
#   bash tools/debian13-lane.sh build [--force]   only (re)build the chroot
#   bash tools/debian13-lane.sh shell             a root shell in the lane (own network)
#   bash tools/debian13-lane.sh stop              stop all the lane started, unmount, remove
#                                                 its network namespace and cgroups
#   bash tools/debian13-lane.sh clean             stop, then delete the chroot
#   bash tools/debian13-lane.sh status
#
# The chroot ($ROOT, default /var/lib/ot-hpc-trixie) is `debootstrap --variant=minbase` of
# Debian 13 from the Debian mirror the host's apt sources use, plus what a fresh Debian 13
# machine has and the project's tools expect (python3, ca-certificates, procps). It is
# rebuilt when its recipe changes or it is older than OT_LANE_MAX_AGE_DAYS (default 7).
#
# Isolation from the host (whose own local cluster may be running, see tools/dev.sh):
#   - network: the lane's daemons and tests run in their own network namespace ($NETNS,
#     only `lo`), so slurmctld/slurmd/slurmdbd/sshd/Ray ports never meet the host's. Only the
#     install steps (apt-get, pip) run in a plain chroot with the host's network.
#   - files: fresh tmpfs /run, /tmp, /dev (own device nodes, own devpts and /dev/shm) inside
#     the chroot; /etc, /var, /root are the chroot's own. The working tree is copied to
#     /srv/ot-hpc (tracked and untracked-but-not-ignored files; never .venv), which keeps its
#     own .venv between runs.
#   - cgroups: on a cgroup v1 host the lane gets a subtree ($CG_NAME under the caller's own
#     cgroup in every hierarchy) and a cgroup namespace rooted there, mounted at the chroot's
#     /sys/fs/cgroup: Slurm's proctrack/cgroup works inside without ever touching the host
#     cluster's slurm_nX cgroups. Every lane process lives in that subtree (or the netns),
#     which is how `stop` finds exactly the processes the lane started.
#   - every mount is undone on exit (trap), also after a failure or Ctrl-C.
#
# Settings: OT_LANE_ROOT, OT_LANE_NETNS, OT_LANE_MIRROR, OT_LANE_SECURITY_MIRROR,
# OT_LANE_MAX_AGE_DAYS, OT_LANE_FRESH=1 (`run` rebuilds the chroot first, as CI does); OT_LANE_SUITE (default trixie; bookworm runs the Debian 12 suite the
# same isolated way, e.g. to time it next to a running host cluster).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=${OT_LANE_SUITE:-trixie}
ROOT=${OT_LANE_ROOT:-/var/lib/ot-hpc-$SUITE}
NETNS=${OT_LANE_NETNS:-ot-$SUITE}
# A lane with its own OT_LANE_NETNS is its own lane: own lock, cgroups and state, so two
# lanes of one suite (two engineers, two chroots) never stop each other's processes.
LANE_ID=$SUITE
[[ $NETNS == "ot-$SUITE" ]] || LANE_ID=$SUITE-$NETNS
CG_NAME=ot-hpc-lane-$LANE_ID
STATE_DIR=/run/ot-hpc-lane-$LANE_ID        # host side: lock, cgroup list (tmpfs)
MAX_AGE_DAYS=${OT_LANE_MAX_AGE_DAYS:-7}
WORK=/srv/ot-hpc                           # the repo copy inside the chroot
# What a fresh Debian machine has and minbase lacks (the rest is tools/dev.sh's job).
BASE_PACKAGES=(ca-certificates python3 procps)
RECIPE_VERSION=1                           # bump to force a rebuild everywhere
STAMP=$ROOT/.ot-hpc-lane
LANE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say()  { printf '[lane %s] %s\n' "$SUITE" "$*"; }
warn() { printf '[lane %s] WARNING: %s\n' "$SUITE" "$*" >&2; }
die()  { printf '[lane %s] ERROR: %s\n' "$SUITE" "$*" >&2; exit 1; }
now()  { printf '%s' "${EPOCHREALTIME/,/.}"; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[[ $ROOT == /*/* && $ROOT != */ && $ROOT != *..* ]] || die "OT_LANE_ROOT must be an absolute path of 2+ levels (got '$ROOT')"
case $ROOT/ in "$REPO"/*) die "OT_LANE_ROOT must be outside the repository" ;; esac
[[ $NETNS =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad OT_LANE_NETNS '$NETNS'"

# ----------------------------------------------------------------------------
# Host side: tools, lock, mirror
# ----------------------------------------------------------------------------
ensure_host_tools() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v unshare >/dev/null || missing+=(util-linux)
    ((${#missing[@]} == 0)) && return 0
    say "installing on the host: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    }
}

take_lock() {  # one lane command at a time per suite
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/lock"
    if ! flock -w "${1:-0}" 9; then
        die "another '$0' command is running for $SUITE (lock $STATE_DIR/lock)"
    fi
}

# The Debian mirror (and security mirror) the host's apt sources use, for its own codename.
host_sources() {  # prints "<uri> <suite>" pairs from sources.list(.d), both formats
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") for (u in U) for (s in S) print U[u], S[s]; delete U; delete S; types = ""; enabled = "" }
             /^[ \t]*$/ { flush(); next }
             /^#/ { next }
             tolower($1) == "types:" { $1 = ""; types = $0 }
             tolower($1) == "enabled:" { enabled = tolower($2) }
             tolower($1) == "uris:" { for (i = 2; i <= NF; i++) U[i] = $i }
             tolower($1) == "suites:" { for (i = 2; i <= NF; i++) S[i] = $i }
             END { flush() }' "$f"
    done
}
MIRROR="" SECURITY_MIRROR=""
find_mirrors() {
    local codename uri suite
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    while read -r uri suite; do
        [[ -z $MIRROR && $suite == "$codename" ]] && MIRROR=${uri%/}
        [[ -z $SECURITY_MIRROR && $suite == "$codename-security" ]] && SECURITY_MIRROR=${uri%/}
    done < <(host_sources 2>/dev/null | grep -E '^(https?|file)://' || true)
    MIRROR=${OT_LANE_MIRROR:-${MIRROR:-http://deb.debian.org/debian}}
    SECURITY_MIRROR=${OT_LANE_SECURITY_MIRROR:-${SECURITY_MIRROR:-http://deb.debian.org/debian-security}}
}

# ----------------------------------------------------------------------------
# The chroot
# ----------------------------------------------------------------------------
recipe() { printf '%s\n' "v$RECIPE_VERSION" "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "${BASE_PACKAGES[*]}"; }
recipe_hash() { recipe | sha256sum | cut -c1-16; }

chroot_state() {  # prints ok | missing | stale:<why>
    [[ -f $STAMP ]] || { echo missing; return; }
    local want age
    want=$(recipe_hash)
    [[ $(head -n1 "$STAMP") == "$want" ]] || { echo "stale:recipe changed"; return; }
    age=$(( ($(date +%s) - $(stat -c %Y "$STAMP")) / 86400 ))
    ((age < MAX_AGE_DAYS)) || { echo "stale:${age} days old"; return; }
    echo ok
}

mounts_under_root() {  # mount points at or below $ROOT, deepest first
    awk -v r="$ROOT" '{ p = $5; gsub(/\\040/, " ", p); if (p == r || index(p, r "/") == 1) print length(p), p }' \
        /proc/self/mountinfo | sort -rn | cut -d' ' -f2-
}

remove_root() {
    [[ -e $ROOT ]] || return 0
    [[ -z $(mounts_under_root) ]] || die "something is still mounted under $ROOT; run '$0 stop' first"
    say "removing $ROOT"
    rm -rf --one-file-system "$ROOT"
}

write_apt_sources() {
    rm -f "$ROOT/etc/apt/sources.list"
    mkdir -p "$ROOT/etc/apt/sources.list.d"
    cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
# Written by ot-hpc tools/debian13-lane.sh (the host's Debian mirror).
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

T_BUILD="" T_DEBOOTSTRAP=""
build_chroot() {
    local t0 t1 includes
    t0=$(now)
    lane_down
    remove_root
    mkdir -p "$(dirname "$ROOT")"
    includes=$(IFS=,; echo "${BASE_PACKAGES[*]}")
    say "debootstrap --variant=minbase $SUITE from $MIRROR into $ROOT"
    t1=$(now)
    if ! debootstrap --variant=minbase --components=main --include="$includes" \
        "$SUITE" "$ROOT" "$MIRROR" >"$STATE_DIR/debootstrap.log" 2>&1; then
        tail -n 20 "$STATE_DIR/debootstrap.log" >&2
        [[ -f $ROOT/debootstrap/debootstrap.log ]] && tail -n 20 "$ROOT/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (log: $STATE_DIR/debootstrap.log)"
    fi
    T_DEBOOTSTRAP=$(secs "$t1")
    say "debootstrap done in $T_DEBOOTSTRAP s"
    write_apt_sources
    # Keep the package lists of the chroot fresh with the full sources (incl. security).
    sync_host_files
    lane_mount
    in_chroot apt-get update -q >"$STATE_DIR/apt-update.log" 2>&1 ||
        { tail -n 20 "$STATE_DIR/apt-update.log" >&2; die "apt-get update in the chroot failed"; }
    in_chroot apt-get -y -q upgrade >>"$STATE_DIR/apt-update.log" 2>&1 || warn "apt-get upgrade in the chroot failed"
    lane_down
    recipe_hash >"$STAMP"
    recipe >>"$STAMP"
    T_BUILD=$(secs "$t0")
    say "chroot built in $T_BUILD s"
}

ensure_chroot() {
    local state
    state=$(chroot_state)
    case $state in
        ok) return 0 ;;
        missing) say "no chroot at $ROOT yet: building it" ;;
        stale:*) say "chroot at $ROOT is stale (${state#stale:}): rebuilding it" ;;
    esac
    build_chroot
}

# Host files the chroot needs fresh on every run: DNS and hosts for the install steps, and
# the host's extra CA certificates (a TLS-intercepting egress proxy's CA, site CAs), or pip
# and apt over https fail with CERTIFICATE_VERIFY_FAILED.
sync_host_files() {
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    cp -L /etc/hosts "$ROOT/etc/hosts" 2>/dev/null || true
    local dest=$ROOT/usr/local/share/ca-certificates
    rm -rf "$dest/ot-hpc-host"
    mkdir -p "$dest/ot-hpc-host"
    if [[ -d /usr/local/share/ca-certificates ]]; then
        (cd /usr/local/share/ca-certificates &&
            find . -name '*.crt' -type f -exec cp --parents {} "$dest/ot-hpc-host/" \;)
    fi
    # Certificates in the host's bundle that the chroot's packages do not ship (added to
    # the bundle directly, or a CA Debian 13 dropped that the host still trusts).
    if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
        find "$ROOT/usr/share/ca-certificates" "$dest/ot-hpc-host" -name '*.crt' -type f -exec cat {} + 2>/dev/null >"$STATE_DIR/known-certs.pem" || true
        awk -v out="$dest/ot-hpc-host/bundle-" -v have="$STATE_DIR/known-certs.pem" '
            BEGIN { while ((getline l < have) > 0) { if (l ~ /BEGIN CERT/) c = ""; c = c l "\n"; if (l ~ /END CERT/) known[c] = 1 } }
            /BEGIN CERTIFICATE/ { c = "" }
            { c = c $0 "\n" }
            /END CERTIFICATE/ { if (!(c in known)) { n++; f = out n ".crt"; printf "%s", c > f; close(f) } }
        ' /etc/ssl/certs/ca-certificates.crt
        rm -f "$STATE_DIR/known-certs.pem"
    fi
    if [[ -x $ROOT/usr/sbin/update-ca-certificates ]]; then
        chroot "$ROOT" /usr/bin/env -i PATH=$LANE_PATH update-ca-certificates >/dev/null 2>&1 ||
            warn "update-ca-certificates in the chroot failed"
    fi
}

# Copy the CURRENT working tree: tracked and untracked-but-not-ignored files, as they are
# on disk now (deleted files stay deleted); never .venv or .cache. The copy keeps its own
# .venv and .cache between runs.
copy_repo() {
    local dest=$ROOT$WORK
    mkdir -p "$dest"
    find "$dest" -mindepth 1 -maxdepth 1 ! -name .venv ! -name .cache -exec rm -rf --one-file-system {} +
    if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$REPO" ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do
                case $f in .venv | .venv/* | .cache/* | .git | .git/*) continue ;; esac
                [[ -e $REPO/$f || -L $REPO/$f ]] && printf '%s\0' "$f"
            done | tar -C "$REPO" --null --no-recursion -T - -cf - | tar -C "$dest" -xf -
    else
        tar -C "$REPO" --exclude=./.venv --exclude=./.cache --exclude=./.git -cf - . | tar -C "$dest" -xf -
    fi
    say "copied the working tree ($(find "$dest" -path "$dest/.venv" -prune -o -path "$dest/.cache" -prune -o -type f -print | wc -l) files) to $WORK"
}

# ----------------------------------------------------------------------------
# Cgroups: a subtree of the caller's cgroups, and a cgroup namespace rooted there
# ----------------------------------------------------------------------------
CG_LIST=$STATE_DIR/cgroups      # lines: <mount name> <fstype> <options> <host dir>

# Host cgroup hierarchies mounted directly at or under /sys/fs/cgroup: "<name> <fstype> <opts>".
host_hierarchies() {
    awk '{ for (i = 7; $i != "-"; i++); fstype = $(i + 1); opts = $(i + 3); p = $5
           if (fstype != "cgroup" && fstype != "cgroup2") next
           if (p == "/sys/fs/cgroup") name = "."; else if (index(p, "/sys/fs/cgroup/") == 1) name = substr(p, 16); else next
           if (name ~ /\//) next
           n = split(opts, o, ","); keep = ""
           for (j = 1; j <= n; j++) if (fstype == "cgroup" && o[j] != "rw" && o[j] != "ro" && o[j] !~ /^(release_agent|clone_children|noprefix|xattr|cpuset_v2_mode)/) keep = keep (keep == "" ? "" : ",") o[j]
           print name, fstype, (keep == "" ? "-" : keep) }' /proc/self/mountinfo
}

# Our own cgroup in the hierarchy with these mount options (v1: controllers or name=X).
self_cgroup() {
    local fstype=$1 opts=$2 line ctrls path
    while IFS= read -r line; do
        ctrls=${line#*:}; path=${ctrls#*:}; ctrls=${ctrls%%:*}
        if [[ $fstype == cgroup2 ]]; then
            [[ -z $ctrls ]] && { echo "$path"; return; }
        elif [[ -n $ctrls && $(tr , '\n' <<<"$ctrls" | sort | paste -sd,) == $(tr , '\n' <<<"$opts" | sort | paste -sd,) ]]; then
            echo "$path"; return
        fi
    done </proc/self/cgroup
    echo /
}

cgroup_setup() {
    : >"$CG_LIST.tmp"
    local name fstype opts rel dir
    while read -r name fstype opts; do
        [[ $name == unified || $name == . || $fstype == cgroup ]] || continue
        rel=$(self_cgroup "$fstype" "$opts")
        if [[ $name == . ]]; then dir=/sys/fs/cgroup${rel%/}/$CG_NAME; else dir=/sys/fs/cgroup/$name${rel%/}/$CG_NAME; fi
        dir=${dir//\/\//\/}
        mkdir -p "$dir" 2>/dev/null || { warn "cannot create cgroup $dir; skipping it"; continue; }
        if [[ -e $dir/cpuset.cpus && -z $(<"$dir/cpuset.cpus") ]]; then
            cat "$(dirname "$dir")/cpuset.cpus" >"$dir/cpuset.cpus"
            cat "$(dirname "$dir")/cpuset.mems" >"$dir/cpuset.mems"
        fi
        echo "$name $fstype $opts $dir" >>"$CG_LIST.tmp"
    done < <(host_hierarchies)
    mv -f "$CG_LIST.tmp" "$CG_LIST"
}

# Move the calling (sub)shell into the lane's cgroups; then `unshare --cgroup` roots a new
# cgroup namespace there.
enter_cgroups() {
    [[ -s $CG_LIST ]] || return 0
    local name fstype opts dir
    while read -r name fstype opts dir; do
        [[ $dir == /sys/fs/cgroup/*/$CG_NAME ]] || continue
        echo "$BASHPID" >"$dir/cgroup.procs" 2>/dev/null || true
    done <"$CG_LIST"
}

# The chroot's /sys/fs/cgroup: the same hierarchies, rooted at the lane's subtree.
mount_chroot_cgroups() {
    [[ -s $CG_LIST ]] || return 0
    local target=$ROOT/sys/fs/cgroup
    if grep -q '^\. ' "$CG_LIST"; then  # pure cgroup v2
        (enter_cgroups; exec unshare --cgroup mount -t cgroup2 cgroup2 "$target")
        return
    fi
    mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs "$target"
    local name fstype opts dir script=""
    while read -r name fstype opts dir; do
        mkdir -p "$target/$name"
        if [[ $fstype == cgroup2 ]]; then
            script+="mount -t cgroup2 cgroup2 '$target/$name' && "
        else
            [[ $opts == name=* ]] && opts=none,$opts
            script+="mount -t cgroup -o '$opts' cgroup '$target/$name' && "
        fi
    done <"$CG_LIST"
    (enter_cgroups; exec unshare --cgroup /bin/sh -c "${script}true") ||
        warn "mounting the lane's cgroups failed; Slurm will fall back to proctrack/linuxproc"
}

cgroup_pids() {  # every pid in the lane's cgroup subtree
    [[ -s $CG_LIST ]] || return 0
    local name fstype opts dir
    while read -r name fstype opts dir; do
        # Only ever the lane's own subtree (never a parent: that would be the host's processes).
        [[ -d $dir && $dir == /sys/fs/cgroup/*/$CG_NAME ]] || continue
        find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null
    done <"$CG_LIST" | sort -un
}

cgroup_remove() {
    [[ -s $CG_LIST ]] || return 0
    local name fstype opts dir
    while read -r name fstype opts dir; do
        [[ -d $dir && $dir == /sys/fs/cgroup/*/$CG_NAME ]] || continue
        find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || warn "cgroup $dir not removed (still in use?)"
    done <"$CG_LIST"
    rm -f "$CG_LIST"
}

# ----------------------------------------------------------------------------
# Mounts, network namespace, running commands
# ----------------------------------------------------------------------------
is_mounted() { [[ -n $(awk -v p="$1" '$5 == p { print; exit }' /proc/self/mountinfo) ]]; }

# /dev of the chroot: a tmpfs with its own nodes, devpts instance and /dev/shm.
mount_dev() {
    local d=$ROOT/dev
    mount -t tmpfs -o mode=755,nosuid,size=64m tmpfs "$d"
    mknod -m 666 "$d/null" c 1 3
    mknod -m 666 "$d/zero" c 1 5
    mknod -m 666 "$d/full" c 1 7
    mknod -m 666 "$d/random" c 1 8
    mknod -m 666 "$d/urandom" c 1 9
    mknod -m 666 "$d/tty" c 5 0
    mkdir -m 755 "$d/pts"
    mkdir -m 1777 "$d/shm"
    mkdir -m 1777 "$d/mqueue"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$d/pts"
    ln -s pts/ptmx "$d/ptmx"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d/shm"
    ln -s /proc/self/fd "$d/fd"
    ln -s /proc/self/fd/0 "$d/stdin"
    ln -s /proc/self/fd/1 "$d/stdout"
    ln -s /proc/self/fd/2 "$d/stderr"
}

lane_mount() {
    [[ -d $ROOT/etc ]] || die "no chroot at $ROOT (run '$0 build')"
    is_mounted "$ROOT/proc" && return 0
    mkdir -p "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/run" "$ROOT/tmp"
    # The chroot's / a mount point of its own (private): `ip netns exec`/`ip -n` begin with
    # `mount --make-rslave /`, which fails on a plain directory, and the local cluster's
    # separate hosts (tools/local-network.sh) need them inside the lane too.
    if ! is_mounted "$ROOT"; then
        mount --bind "$ROOT" "$ROOT"
        mount --make-private "$ROOT"
    fi
    mount -t proc -o nosuid,nodev,noexec proc "$ROOT/proc"
    # Non-recursive and read-only: the host's /sys/fs/cgroup mounts are NOT carried in.
    mount --bind /sys "$ROOT/sys"
    mount --make-rslave "$ROOT/sys"
    mount -o remount,bind,ro "$ROOT/sys"
    mount_dev
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$ROOT/run"
    mkdir -p -m 1777 "$ROOT/run/lock"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/tmp"
    cgroup_setup
    mount_chroot_cgroups
}

netns_up() {
    if ! ip netns list 2>/dev/null | grep -qw -- "^$NETNS"; then
        ip netns add "$NETNS"
    fi
    ip netns exec "$NETNS" ip link set lo up
    # A machine always has an address besides 127.0.0.1; glibc's AI_ADDRCONFIG ignores
    # 127.0.0.1 itself, so without another one Slurm 24.11's getaddrinfo(NULL, port,
    # AF_INET, AI_PASSIVE|AI_ADDRCONFIG) fails ("Unable to resolve \"(null)\"", slurmdbd and
    # slurmctld cannot bind). 127.0.1.1 is Debian's address for the hostname; still loopback.
    ip netns exec "$NETNS" ip addr replace 127.0.1.1/8 dev lo
}

chroot_env() {
    # Default SIGINT/SIGQUIT: a lane started in the background (nohup ... &) would otherwise
    # hand its tests ignored signals (Python then never raises KeyboardInterrupt).
    printf '%s\n' /usr/bin/env --default-signal=INT,QUIT -i "PATH=$LANE_PATH" HOME=/root USER=root LOGNAME=root \
        LANG=C.UTF-8 "TERM=${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1
    [[ -z ${CI:-} ]] || printf 'CI=%s\n' "$CI"
}
# in_chroot CMD...: in the chroot with the host's network (install steps only).
in_chroot() {
    local env=()
    mapfile -t env < <(chroot_env)
    (enter_cgroups; cd /; exec 9>&-; exec unshare --cgroup chroot "$ROOT" "${env[@]}" "$@")
}
# in_lane CMD...: in the chroot AND the lane's network namespace (services, tests).
in_lane() {
    local env=()
    mapfile -t env < <(chroot_env)
    (enter_cgroups; cd /; exec 9>&-; exec unshare --cgroup ip netns exec "$NETNS" chroot "$ROOT" "${env[@]}" "$@")
}

lane_pids() {  # processes the lane started: in its cgroups, its netns, or its chroot
    {
        cgroup_pids
        ip netns pids "$NETNS" 2>/dev/null || true
        local p r
        for p in /proc/[0-9]*; do
            r=$(readlink "$p/root" 2>/dev/null) || continue
            [[ $r == "$ROOT" ]] && echo "${p#/proc/}"
        done
    } | sort -un | grep -vx -e "$$" -e "$BASHPID" || true
}

kill_leftovers() {
    local pids i
    pids=$(lane_pids)
    [[ -n $pids ]] || return 0
    say "ending $(wc -w <<<"$pids") leftover lane process(es)"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pids=$(lane_pids)
        [[ -n $pids ]] || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
}

# Stop all the lane started, unmount, remove the netns and cgroups. Idempotent.
lane_down() {
    if [[ -d $ROOT$WORK/tools ]] && is_mounted "$ROOT/proc" && ip netns list 2>/dev/null | grep -qw -- "^$NETNS" &&
        [[ -n $(lane_pids) ]]; then
        in_lane timeout 180 bash "$WORK/tools/dev.sh" stop || warn "'dev.sh stop' in the lane failed"
    fi
    kill_leftovers
    local m
    while IFS= read -r m; do
        [[ -n $m ]] || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "cannot unmount $m"
    done < <(mounts_under_root)
    if ip netns list 2>/dev/null | grep -qw -- "^$NETNS"; then
        ip netns del "$NETNS" 2>/dev/null || warn "cannot delete network namespace $NETNS"
    fi
    cgroup_remove
}

# ----------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------
T_TOTAL0=$(now)
T_INSTALL="" T_CLUSTER="" T_TESTS=""
summary() {
    local parts=()
    [[ -n $T_BUILD ]] && parts+=("chroot build ${T_BUILD} s (debootstrap ${T_DEBOOTSTRAP} s)")
    [[ -n $T_INSTALL ]] && parts+=("packages + venv ${T_INSTALL} s")
    [[ -n $T_CLUSTER ]] && parts+=("cluster + sshd start ${T_CLUSTER} s")
    [[ -n $T_TESTS ]] && parts+=("tests ${T_TESTS} s")
    parts+=("total $(secs "$T_TOTAL0") s")
    local joined
    joined=$(printf '%s; ' "${parts[@]}")
    say "times: ${joined%; }"
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    lane_down || true
    summary
    exit $rc
}

cmd_run() {
    ensure_host_tools
    take_lock 0
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    find_mirrors
    lane_down  # whatever an interrupted earlier run left behind
    if [[ ${OT_LANE_FRESH:-} == 1 ]]; then build_chroot; else ensure_chroot; fi
    lane_mount
    sync_host_files
    copy_repo
    local t0 rc=0
    t0=$(now)
    say "installing Debian $SUITE's packages and the venv (host network): bash tools/dev.sh install"
    # Package lists older than a day would point at superseded .debs.
    if [[ -z $(find "$ROOT/var/lib/apt/lists" -maxdepth 1 -name '*_InRelease' -mmin -1440 2>/dev/null | head -n1) ]]; then
        in_chroot apt-get update -q >/dev/null || warn "apt-get update in the chroot failed"
    fi
    in_chroot bash -c "cd $WORK && bash tools/dev.sh install" || die "'bash tools/dev.sh install' failed in the chroot"
    T_INSTALL=$(secs "$t0")
    ip netns del "$NETNS" 2>/dev/null || true  # a fresh namespace for every run
    netns_up
    say "starting the cluster and running the tests (network namespace $NETNS): bash tools/dev.sh test $*"
    local inner
    # shellcheck disable=SC2016
    inner='cd "$0" || exit 1
        t=$EPOCHREALTIME
        bash tools/dev.sh setup || exit 90
        awk -v a="${t/,/.}" -v b="${EPOCHREALTIME/,/.}" "BEGIN { printf \"%.1f\", b - a }" >/run/ot-hpc-lane.cluster-seconds
        # This lane names slurm.conf explicitly (sites with a non-default one set SLURM_CONF);
        # the Debian 12 lane leaves it unset: the suite must pass either way.
        # Debian 13 has Python 3.13 only, skyrl-train 0.3.1 needs 3.12: the SkyRL wheel
        # tests skip here with that reason and run in the Debian 12 lane (tools/dev.sh).
        # The lane'"'"'s cluster is its own: the fault tests may stop its daemons.
        OT_HPC_REQUIRE_SKYRL=0 SLURM_CONF=/etc/slurm/slurm.conf OT_HPC_FAULT_TESTS=1 exec bash tools/dev.sh test "$@"'
    t0=$(now)
    rm -f "$ROOT/run/ot-hpc-lane.cluster-seconds"
    in_lane bash -c "$inner" "$WORK" "$@" || rc=$?
    local elapsed
    elapsed=$(secs "$t0")
    T_CLUSTER=$(cat "$ROOT/run/ot-hpc-lane.cluster-seconds" 2>/dev/null || true)
    if [[ -n $T_CLUSTER ]]; then
        T_TESTS=$(awk -v a="$elapsed" -v b="$T_CLUSTER" 'BEGIN { printf "%.1f", a - b }')
    else
        T_CLUSTER="failed after $elapsed"
    fi
    ((rc == 90)) && warn "the local cluster or sshd did not start in the lane (logs: $ROOT/var/log/ot-hpc-local-cluster/)"
    say "bash tools/dev.sh test exited $rc"
    return $rc
}

cmd_build() {
    ensure_host_tools
    take_lock 0
    find_mirrors
    if [[ ${1:-} == --force ]]; then build_chroot; else ensure_chroot; say "chroot at $ROOT: $(chroot_state)"; fi
}

cmd_shell() {
    ensure_host_tools
    take_lock 0
    find_mirrors
    trap on_exit EXIT
    lane_down
    ensure_chroot
    lane_mount
    sync_host_files
    copy_repo
    in_chroot bash -c "cd $WORK && bash tools/dev.sh install" || warn "'bash tools/dev.sh install' failed in the chroot"
    netns_up
    say "shell in the lane (network namespace $NETNS; repo copy at $WORK; exit stops all it started)"
    in_lane bash -l -c "cd $WORK 2>/dev/null; exec bash -i" || true
}

cmd_stop() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    take_lock 30
    lane_down
    say "stopped (nothing of the lane is running or mounted)"
}

cmd_clean() {
    cmd_stop
    remove_root
    rm -rf "$STATE_DIR"
}

cmd_status() {
    find_mirrors
    say "chroot $ROOT: $( [[ -d $ROOT ]] && chroot_state || echo missing)"
    say "mounts: $(mounts_under_root | wc -l); network namespace $NETNS: $(ip netns list 2>/dev/null | grep -qw -- "^$NETNS" && echo present || echo absent)"
    local pids
    pids=$(lane_pids)
    say "lane processes: $(wc -w <<<"$pids")"
    if [[ -n $pids ]]; then
        # shellcheck disable=SC2086
        ps -o pid=,args= -p "$(tr '\n' , <<<"$pids" | sed 's/,$//')" | cut -c1-150
    fi
}

case ${1:-} in
    run) shift; cmd_run "$@" ;;
    build) shift; cmd_build "$@" ;;
    shell) cmd_shell ;;
    stop) cmd_stop ;;
    clean) cmd_clean ;;
    status) cmd_status ;;
    *)
        echo "usage: bash tools/debian13-lane.sh run [PYTEST ARGS] | build [--force] | shell | stop | clean | status" >&2
        exit 2
        ;;
esac
