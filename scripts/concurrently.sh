#!/usr/bin/env bash
# Runs named shell commands at the same time; fails if any of them fails.
#
#   bash scripts/concurrently.sh NAME 'COMMAND' [NAME 'COMMAND' ...] [--then NAME 'COMMAND' ...]
#
# `--then` starts a new stage: its commands start together once every command of the
# stage before has ended (whatever their exit status, so that one run reports every
# failure). Each command's output goes to test-output/groups/NAME.log and is printed
# whole when the command ends, so outputs never interleave. The end lists every command
# with its exit status and time, then the ten slowest tests of all the pytest
# --durations tables.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=test-output/groups
mkdir -p "$LOGS"

declare -A command_of stage_of pid_of started_at
names=()
stage=0
while [ "$#" -ge 1 ]; do
    if [ "$1" = --then ]; then
        stage=$((stage + 1))
        shift
        continue
    fi
    [ "$#" -ge 2 ] || { echo "concurrently: a NAME without a COMMAND: $1" >&2; exit 2; }
    names+=("$1")
    command_of[$1]=$2
    stage_of[$1]=$stage
    shift 2
done

# Each command in a process group of its own, where it keeps SIGINT (a background job
# without job control ignores it); an interrupt is passed on, so pytest stops its servers.
set -m
trap 'for pid in "${pid_of[@]}"; do kill -INT -- "-$pid" 2>/dev/null; done; wait; exit 130' INT TERM

declare -A status_of took
failed=0
for current in $(seq 0 "$stage"); do
    declare -A name_of=()
    for name in "${names[@]}"; do
        [ "${stage_of[$name]}" -eq "$current" ] || continue
        bash -c "${command_of[$name]}" >"$LOGS/$name.log" 2>&1 </dev/null &
        pid_of[$name]=$!
        name_of[$!]=$name
        started_at[$name]=$SECONDS
        echo "concurrently: started $name: ${command_of[$name]}"
    done
    while [ "${#name_of[@]}" -gt 0 ]; do
        wait -n -p done_pid "${!name_of[@]}"
        status=$?
        name=${name_of[$done_pid]}
        unset "name_of[$done_pid]"
        status_of[$name]=$status
        elapsed=$((SECONDS - started_at[$name]))
        took[$name]="$((elapsed / 60))m$(printf %02d $((elapsed % 60)))s"
        echo
        echo "======== $name: exit $status after ${took[$name]} ($LOGS/$name.log) ========"
        cat "$LOGS/$name.log"
        [ "$status" -eq 0 ] || failed=1
    done
    unset name_of
done

echo
echo "======== summary ========"
for name in "${names[@]}"; do
    verdict=passed
    [ "${status_of[$name]}" -eq 0 ] || verdict="FAILED (exit ${status_of[$name]})"
    echo "$name: $verdict in ${took[$name]}"
done
echo "all: $((SECONDS / 60))m$(printf %02d $((SECONDS % 60)))s"
echo
echo "ten slowest tests:"
logs=()
for name in "${names[@]}"; do logs+=("$LOGS/$name.log"); done
grep -hE '^[0-9]+\.[0-9]+s (setup|call|teardown) ' "${logs[@]}" | sort -rn | head -10
exit "$failed"
