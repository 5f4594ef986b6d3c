#!/usr/bin/env bash
# Install the brokers the scale-out tests run against: a Redis server and a NATS server (Debian packages),
# unless both are already there. The tests start their own instances on free loopback ports and stop them
# by PID (tests/brokers/conftest.py); the package's own service, if the package starts one, is not used.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ] || [ -x "/usr/sbin/$1" ]; }
have redis-server || need+=(redis-server)
have nats-server || need+=(nats-server)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
# policy-rc.d exit code 101: do not start the packaged services during the install.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    ADDED_POLICY=1
fi
trap 'if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi' EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
PATH="$PATH:/usr/sbin:/usr/bin" redis-server --version
PATH="$PATH:/usr/sbin:/usr/bin" nats-server --version
