#!/usr/bin/env bash
# tools/dev.sh -- everything a fresh machine needs to try or test ot-hpc, in one place.
#
#   bash tools/dev.sh demo    set up, then submit the demo job to the local cluster and wait
#   bash tools/dev.sh test    set up, then run the test suite (extra args go to pytest)
#   bash tools/dev.sh setup   only set up: packages, venv, local Slurm cluster, local sshd
#   bash tools/dev.sh install only install: Debian packages and the venv; starts nothing
#                             (needs the network; `setup`/`test` afterwards do not)
#   bash tools/dev.sh stop    stop the local sshd and the local Slurm cluster
#   bash tools/dev.sh skyrl-venvs  only the two SkyRL venvs the tests check against
#
# Set-up is idempotent and runs as root (Debian 12 or 13): Debian's Slurm packages and a
# real single-machine cluster (tools/local-cluster.sh; nodes, login node and "internet" as
# separate hosts in network namespaces where possible, OT_LOCAL_NETWORK=loopback for one
# shared stack), an sshd playing the login node ot-login for the SSH tunnel
# (tools/local-login-sshd.sh), and a virtualenv in .venv with ot-hpc (editable), pytest
# and Ray. CI (.ci/run) runs `bash tools/dev.sh test`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${OT_HPC_VENV:-$REPO/.venv}
PYTHON=${OT_HPC_PYTHON:-python3}

say() { printf '[dev] %s\n' "$*"; }

ensure_venv() {
    if [[ ! -x $VENV/bin/python ]]; then
        if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
            say "installing python3-venv"
            rm -rf "$VENV"
            apt-get install -y --no-install-recommends python3-venv >/dev/null
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    # Reinstall only when the package metadata changed (a pip no-op still costs seconds).
    local stamp=$VENV/.ot-hpc-installed
    local want
    want=$(cat "$REPO/setup.cfg" "$REPO/pyproject.toml" | sha256sum | cut -c1-16)
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        say "installing ot-hpc (editable) with its test and ray extras into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e "$REPO[test,ray]"
        echo "$want" >"$stamp"
    fi
}

# The released SkyRL wheels the pre-flight tests check against (tests/skyrl_wheels.py),
# each in a Python 3.12 venv under .cache/: installed with --no-deps (no torch, no vLLM,
# no Ray) plus what their config modules import. skyrl 0.4.0's config module imports
# skyrl_gym, pandas (python-dateutil), requests, loguru and yaml, and no torch: no stub.
SKYRL_TRAIN_VERSION=0.3.1
SKYRL_VERSION=0.4.0
find_python312() {
    local c
    for c in "${OT_HPC_PYTHON312:-}" "$(command -v python3.12 || true)" "$HOME"/.pyenv/versions/3.12*/bin/python3.12 \
        /usr/bin/python3.12 /usr/local/bin/python3.12; do
        if [[ -n $c && -x $c ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    return 1
}
skyrl_venv() {  # DIR "NO-DEPS PACKAGES" "PACKAGES"
    local dir=$1 want="$2|$3"
    [[ -x $dir/bin/python && $(cat "$dir/.ot-hpc-ready" 2>/dev/null) == "$want" ]] && return 0
    say "installing $2 (--no-deps) and $3 into $dir"
    rm -rf "$dir"
    # shellcheck disable=SC2086 # the package lists are words
    "$BASE312" -m venv "$dir" && "$dir/bin/python" -m pip install -q --no-deps $2 &&
        "$dir/bin/python" -m pip install -q $3 && echo "$want" >"$dir/.ot-hpc-ready"
}
ensure_skyrl_venvs() {
    local cache=$REPO/.cache missing=$REPO/.cache/skyrl-venvs.missing
    mkdir -p "$cache"
    if ! BASE312=$(find_python312); then
        echo "no Python 3.12 on this machine (skyrl-train 0.3.1 needs ==3.12; set OT_HPC_PYTHON312)" >"$missing"
        say "WARNING: $(cat "$missing"): the SkyRL wheel tests cannot run here"
        return 0
    fi
    # Each with the Ray its SkyRL pins (--no-deps: only what detection reads is needed).
    if skyrl_venv "$cache/skyrl-train-$SKYRL_TRAIN_VERSION" "skyrl-train==$SKYRL_TRAIN_VERSION ray==2.51.1" "hydra-core==1.3.2 omegaconf" &&
        skyrl_venv "$cache/skyrl-$SKYRL_VERSION" "skyrl==$SKYRL_VERSION skyrl-gym==$SKYRL_VERSION ray==2.57.0" \
            "omegaconf pandas python-dateutil requests loguru pyyaml"; then
        rm -f "$missing"
    else
        echo "installing the SkyRL wheels with $BASE312 failed (network?)" >"$missing"
        say "WARNING: $(cat "$missing")"
    fi
}

# Packages and venv only (no daemon, no port): what needs the package registries.
install() {
    bash "$REPO/tools/local-cluster.sh" install
    if [[ -f $REPO/tools/local-login-sshd.sh ]]; then
        bash "$REPO/tools/local-login-sshd.sh" install
    fi
    ensure_venv
    ensure_skyrl_venvs
    ensure_clients
}

# What the tests run as the job's clients would: curl (and so git's HTTP) through the
# proxy. A minimal Debian (the Debian 13 lane's chroot) has no curl.
ensure_clients() {
    command -v curl >/dev/null && return 0
    say "installing curl"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl >/dev/null
}

setup() {
    bash "$REPO/tools/local-cluster.sh" start
    if [[ -f $REPO/tools/local-login-sshd.sh ]]; then
        bash "$REPO/tools/local-login-sshd.sh" start
    fi
    ensure_venv
    ensure_skyrl_venvs
    ensure_clients
}

case ${1:-} in
    install)
        install
        ;;
    setup)
        setup
        ;;
    skyrl-venvs)
        ensure_skyrl_venvs
        ;;
    demo)
        setup
        cd "$REPO/envs"
        exec "$VENV/bin/ot-submit" --config demo.env --wait
        ;;
    test)
        shift
        setup
        cd "$REPO"
        # A missing cluster fails the tests instead of skipping them.
        export OT_HPC_REQUIRE_CLUSTER=1
        # ... and missing SkyRL wheel venvs fail them too (the Debian 13 lane opts out: no 3.12).
        export OT_HPC_REQUIRE_SKYRL=${OT_HPC_REQUIRE_SKYRL:-1}
        # The cluster is this command's own: the fault tests may stop and restart its
        # slurmctld/slurmdbd (a bare pytest leaves them skipped: OT_HPC_FAULT_TESTS unset).
        export OT_HPC_FAULT_TESTS=${OT_HPC_FAULT_TESTS:-1}
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    stop)
        if [[ -f $REPO/tools/local-login-sshd.sh ]]; then
            bash "$REPO/tools/local-login-sshd.sh" stop || true
        fi
        bash "$REPO/tools/local-cluster.sh" stop
        ;;
    *)
        echo "usage: bash tools/dev.sh demo|test|setup|install|skyrl-venvs|stop" >&2
        exit 2
        ;;
esac
