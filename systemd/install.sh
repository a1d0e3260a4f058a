#!/bin/sh
# Install edge-agent as a systemd service on this PC. Run as root from the source tree:
#
#   sudo sh systemd/install.sh --profile eastron-sdm630 --modbus-tcp 192.168.10.21
#
# The arguments are those of `edge-agent init` for the first meter (without them a
# placeholder Modbus TCP meter is written). It creates the user edge-agent (group
# dialout for serial ports), a venv in /opt/edge-agent, the unit, and
# /etc/edge-agent/agent.yaml unless that exists; then it prints what to do next.
# It does not start the service: the config needs your values first.
#
# Dry run (nothing outside DESTDIR changes; commands are printed instead):
#   DESTDIR=/tmp/stage DRY_RUN=1 EDGE_AGENT=.venv/bin/edge-agent sh systemd/install.sh
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/edge-agent}
PYTHON=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}
EDGE_AGENT=${EDGE_AGENT:-$DESTDIR$PREFIX/bin/edge-agent}
USER_NAME=edge-agent
UNIT_DIR=$DESTDIR/etc/systemd/system
CONF_DIR=$DESTDIR/etc/edge-agent
CONF=$CONF_DIR/agent.yaml

run() {
    if [ "$DRY_RUN" = 1 ]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

if [ "$DRY_RUN" != 1 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo), or set DRY_RUN=1 DESTDIR=... to see what it does" >&2
    exit 1
fi

# 1. the service user: no login, no home, serial ports through the dialout group
if id "$USER_NAME" >/dev/null 2>&1; then
    echo "user $USER_NAME exists"
else
    run useradd --system --user-group --groups dialout --no-create-home \
        --home-dir /var/lib/edge-agent --shell /usr/sbin/nologin "$USER_NAME"
fi

# 2. the program, in its own venv
run "$PYTHON" -m venv "$DESTDIR$PREFIX"
run "$DESTDIR$PREFIX/bin/pip" install --quiet --disable-pip-version-check "$SRC"

# 3. the unit
install -d "$UNIT_DIR"
install -m 0644 "$SRC/systemd/edge-agent.service" "$UNIT_DIR/edge-agent.service"
echo "installed $UNIT_DIR/edge-agent.service"

# 4. a starter config, never over an existing one
install -d -m 0750 "$CONF_DIR"
if [ -e "$CONF" ]; then
    echo "kept $CONF (it exists)"
else
    if [ "$#" -eq 0 ]; then
        set -- --profile eastron-sdm630 --modbus-tcp 192.168.10.21
    fi
    if [ -x "$EDGE_AGENT" ]; then
        "$EDGE_AGENT" init -c "$CONF" "$@"
    else
        run "$EDGE_AGENT" init -c "$CONF" "$@"
    fi
    run chown "root:$USER_NAME" "$CONF_DIR" "$CONF"
    run chmod 0640 "$CONF"
fi

run systemctl daemon-reload

cat <<NEXT

Next steps:
  1. Edit $CONF: the gateway ids, sync.url and the CHANGE lines; add your meters.
  2. The sync token:  sudo install -m 0600 /dev/stdin /etc/edge-agent/sync-token
                      (paste the token from the platform, then Ctrl-D)
  3. Check it as the service will start: sudo $PREFIX/bin/edge-agent check --for-systemd -c /etc/edge-agent/agent.yaml
  4. Read a meter:    $PREFIX/bin/edge-agent probe -c /etc/edge-agent/agent.yaml meter1
  5. Start it:        sudo systemctl enable --now edge-agent
  6. Watch it:        journalctl -u edge-agent -f   and   sudo $PREFIX/bin/edge-agent status -c /etc/edge-agent/agent.yaml
NEXT
