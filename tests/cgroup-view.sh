#!/usr/bin/env bash
# Usage: tests/cgroup-view.sh CMD [ARGS...]
#
# Runs CMD in a private mount namespace whose /sys/fs/cgroup shows every cgroup
# hierarchy of the host except the v1 memory one. On a hybrid host (like the
# development machines) that lets tests create cgroups freely: the v1 memory
# hierarchy they must never touch does not exist in their view, so neither
# runlambda nor runc can put anything there. Everything else stays the same:
# mount point names, the cgroup2 mount, the other v1 controllers.
#
# Where there is no v1 memory hierarchy under /sys/fs/cgroup (pure cgroup v2,
# or already inside such a view) it simply execs CMD. CMD's exit code is
# passed through. Needs root (CAP_SYS_ADMIN) on a hybrid host.
set -euo pipefail

if [ $# -eq 0 ]; then sed -n '2,13p' "$0" >&2; exit 2; fi

ROOT=/sys/fs/cgroup

# Prints "MOUNTPOINT FSTYPE SUPEROPTS" for each cgroup mount under $ROOT.
# Fields after the " - " separator of mountinfo are fstype, source, options.
cgroup_mounts() {
    awk -v root="$ROOT/" '{
        for (i = 7; $i != "-"; i++) ;
        if (($(i + 1) == "cgroup" || $(i + 1) == "cgroup2") && index($5, root) == 1)
            print $5, $(i + 1), $(i + 3)
    }' /proc/self/mountinfo
}

is_v1_memory() {   # FSTYPE SUPEROPTS
    [ "$1" = cgroup ] && [[ ",$2," == *,memory,* ]]
}

if [ -z "${RUNLAMBDA_CGROUP_VIEW_INNER:-}" ]; then
    hidden=0
    while read -r mnt fstype opts; do
        if is_v1_memory "$fstype" "$opts"; then hidden=1; fi
    done < <(cgroup_mounts)
    if [ "$hidden" = 0 ]; then exec "$@"; fi
    # Re-run this script as the first process of a new private mount
    # namespace; the branch below builds the view there.
    RUNLAMBDA_CGROUP_VIEW_INNER=1 exec unshare --mount --propagation private -- \
        bash "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
fi
unset RUNLAMBDA_CGROUP_VIEW_INNER

# Build the new tree on a fresh tmpfs in a scratch dir while the host's
# hierarchies are still visible, drop the old tree from this namespace (so
# that mountinfo no longer lists the memory hierarchy), then move the new
# one into its place.
stage=$(mktemp -d "${TMPDIR:-/tmp}/cgroup-view.XXXXXX")
trap 'rmdir "$stage" 2>/dev/null || true' EXIT
mount -t tmpfs -o mode=755 cgroup-view "$stage"
while read -r mnt fstype opts; do
    if is_v1_memory "$fstype" "$opts"; then continue; fi
    mkdir -p "$stage${mnt#"$ROOT"}"
    mount --bind "$mnt" "$stage${mnt#"$ROOT"}"
done < <(cgroup_mounts)
# Keep symlinks such as cpu -> cpu,cpuacct, unless they lead to memory.
for link in "$ROOT"/*; do
    if [ -L "$link" ] && [ -e "$stage/$(readlink "$link")" ]; then
        cp -P "$link" "$stage/"
    fi
done
umount --recursive "$ROOT"
mount --move "$stage" "$ROOT"
rmdir "$stage"
trap - EXIT

exec "$@"
