#!/usr/bin/env bash
# Usage: tests/uml/guest.sh [--] CMD [ARGS...]
#
# Boots a throw-away User-Mode Linux guest whose cgroups are pure v2 and runs
# CMD in it as root, with the caller's environment and working directory and
# stdin from /dev/null. CMD's stdout and stderr come back on stdout through the
# guest console (slow: keep them small). Exits with CMD's exit code, 124 if
# the guest timed out, 125 if the guest failed before CMD ended.
#
# The guest sees:
#   /                    the host's root, read-only
#   /tmp /run /dev/shm   empty tmpfs; the host's /tmp is hidden except the
#                        working directory and CMD's directory, read-only
#   /sys/fs/cgroup       cgroup2 with $RUNLAMBDA_UML_CONTROLLERS enabled
#
# Knobs (environment; like all the caller's variables they reach CMD too):
#   RUNLAMBDA_UML_MEM=1G          guest RAM (kept in the host's /dev/shm)
#   RUNLAMBDA_UML_TIMEOUT=600     seconds before the guest is killed
#   RUNLAMBDA_UML_CONTROLLERS="+cpu +memory +pids +io"
#                                 written to the root's cgroup.subtree_control
#                                 ("" leaves it empty)
#   RUNLAMBDA_UML_V1_MEMORY=1     a hybrid layout instead: tmpfs on
#                                 /sys/fs/cgroup, cgroup2 at .../unified with
#                                 the controllers above but memory, and a v1
#                                 memory hierarchy at .../memory
#   RUNLAMBDA_UML_RW=/a:/b        host dirs mounted read-write at their path
#   RUNLAMBDA_UML_VERBOSE=1       also print the guest's console messages
#
# Needs root and Debian's user-mode-linux package; installs nothing.
set -euo pipefail

UML=/usr/bin/linux.uml
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

if [ "${1:-}" = -- ]; then shift; fi
if [ $# -eq 0 ]; then sed -n '2,29p' "$0" >&2; exit 2; fi
if [ ! -x "$UML" ]; then
    echo "guest.sh: $UML not found: install the Debian package user-mode-linux" >&2
    exit 125
fi
if [ "$(id -u)" != 0 ]; then echo "guest.sh: must run as root" >&2; exit 125; fi

RUN=$(mktemp -d "${TMPDIR:-/tmp}/uml-guest.XXXXXX")
trap 'rm -rf "$RUN"' EXIT

# Everything the guest's init needs goes into the run dir, which the guest
# mounts read-write; it writes CMD's exit code back there.
token="uml-$$-$RANDOM$RANDOM"
printf '%s\n' "$token" > "$RUN/token"
printf '%s\0' "$@" > "$RUN/cmd"
pwd > "$RUN/cwd"
export -p | grep -Ev '^declare -x (PWD|OLDPWD|SHLVL|_|TMPDIR|TMP|TEMP|BASHOPTS|SHELLOPTS)(=|$)' \
    > "$RUN/env" || true
# Host dirs the guest's tmpfs /tmp would hide: expose the ones CMD needs.
cmd_path=$(command -v "$1" || true)
case "$cmd_path" in /*) ;; *) cmd_path="$(pwd)/$cmd_path" ;; esac
ro=()
for d in "$(pwd)" "$(dirname "$cmd_path")"; do
    case "$d/" in /tmp/*) ro+=("$d") ;; esac
done
printf '%s\n' "${ro[@]}" | sort -u | grep -v '^$' > "$RUN/ro" || true
# The guest cannot create mount points in its read-only root.
IFS=: read -r -a rw_dirs <<< "${RUNLAMBDA_UML_RW:-}"
for d in "${rw_dirs[@]}"; do mkdir -p "$d"; done

# The guest's RAM is an unlinked file in TMPDIR: keep it on tmpfs.
# timeout kills UML's whole process group (one host process per guest process).
set +e
TMPDIR=/dev/shm timeout -k 5 "${RUNLAMBDA_UML_TIMEOUT:-600}" "$UML" \
    mem="${RUNLAMBDA_UML_MEM:-1G}" rootfstype=hostfs rootflags=/ ro \
    init="$HERE/init.sh" runlambda_run="$RUN" quiet loglevel=0 \
    con0=fd:0,fd:1 con=null ssl=null umid="uml-guest-$$" uml_dir="$RUN" \
    < /dev/null 2>&1 |
    tee "$RUN/console" |
    awk -v begin="$token begin" -v end="$token end" -v verbose="${RUNLAMBDA_UML_VERBOSE:-}" '
        { sub(/\r$/, "") }
        $0 == begin { on = 1; next }
        $0 == end { on = 0; next }
        on || verbose { print; fflush() }'
uml_rc=${PIPESTATUS[0]}
set -e

if [ "$uml_rc" = 124 ] || [ "$uml_rc" = 137 ]; then
    echo "guest.sh: guest timed out after ${RUNLAMBDA_UML_TIMEOUT:-600}s" >&2
    exit 124
fi
if [ -s "$RUN/rc" ]; then exit "$(cat "$RUN/rc")"; fi
echo "guest.sh: the guest ended without running the command (linux.uml exit $uml_rc); console tail:" >&2
tail -n 30 "$RUN/console" | tr -d '\r' >&2
exit 125
