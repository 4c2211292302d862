#!/usr/bin/env bash
# `just down`: stops a running `just up` (and any node or worker it left
# behind, by the pids it recorded) and removes the local state in .data/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=.data

alive() { kill -0 "$1" 2>/dev/null; }
# Only signal a recorded pid that still runs one of our programs.
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -Eq 'fleetbus|nats-server'; }

stop() {
    local pids=("$@") pid waited=0
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    while [ $waited -lt 300 ]; do
        local left=0
        for pid in "${pids[@]}"; do alive "$pid" && left=1; done
        [ $left -eq 0 ] && return 0
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "down: still running after 30 s, killing: ${pids[*]}" >&2
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

if [ -f "$DATA/dev.pid" ]; then
    pid="$(cat "$DATA/dev.pid")"
    if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then
        echo "down: stopping just up (pid $pid)"
        stop "$pid"
    fi
fi

left=()
for f in "$DATA"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then left+=("$pid"); fi
done
if [ ${#left[@]} -gt 0 ]; then
    echo "down: stopping leftover processes ${left[*]}"
    stop "${left[@]}"
fi

if [ -d "$DATA" ]; then
    rm -rf "$DATA"
    echo "down: removed $DATA/"
fi
