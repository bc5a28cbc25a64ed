#!/usr/bin/env bash
# tools/dev.sh -- everything a fresh machine needs to try or test ot-hpc, in one place.
#
#   bash tools/dev.sh demo    set up, then submit the demo job to the local cluster and wait
#   bash tools/dev.sh test    set up, then run the test suite (extra args go to pytest)
#   bash tools/dev.sh setup   only set up: packages, venv, local Slurm cluster, local sshd
#   bash tools/dev.sh install only install: Debian packages and the venv; starts nothing
#                             (needs the network; `setup`/`test` afterwards do not)
#   bash tools/dev.sh stop    stop the local sshd and the local Slurm cluster
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

# Packages and venv only (no daemon, no port): what needs the package registries.
install() {
    bash "$REPO/tools/local-cluster.sh" install
    if [[ -f $REPO/tools/local-login-sshd.sh ]]; then
        bash "$REPO/tools/local-login-sshd.sh" install
    fi
    ensure_venv
}

setup() {
    bash "$REPO/tools/local-cluster.sh" start
    if [[ -f $REPO/tools/local-login-sshd.sh ]]; then
        bash "$REPO/tools/local-login-sshd.sh" start
    fi
    ensure_venv
}

case ${1:-} in
    install)
        install
        ;;
    setup)
        setup
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
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    stop)
        if [[ -f $REPO/tools/local-login-sshd.sh ]]; then
            bash "$REPO/tools/local-login-sshd.sh" stop || true
        fi
        bash "$REPO/tools/local-cluster.sh" stop
        ;;
    *)
        echo "usage: bash tools/dev.sh demo|test|setup|install|stop" >&2
        exit 2
        ;;
esac
