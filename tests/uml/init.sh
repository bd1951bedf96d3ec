#!/bin/bash
# PID 1 of the guest that guest.sh boots: mounts the guest's file systems and
# cgroups, runs the command described in the run dir, writes its exit code
# back there and powers the guest off. The kernel command line hands over the
# run dir's host path as $runlambda_run.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# UML exits when the guest powers off; init must not exit first (panic).
power_off() { sync; echo o > /proc/sysrq-trigger; sleep 60; }
# A setup failure leaves no exit code: guest.sh then shows the console tail.
fail() { echo "init.sh: $*"; power_off; }
trap 'fail "failed: $BASH_COMMAND"' ERR
[ -n "${runlambda_run:-}" ] || fail "no runlambda_run= on the kernel command line"

mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
# Mount the run dir before the tmpfs on /tmp can hide it.
RUN=/run/uml-guest
mkdir "$RUN"
mount -t hostfs -o "$runlambda_run" hostfs "$RUN"
mount -t tmpfs -o mode=1777 tmpfs /tmp

# From here on the caller's environment, knobs included, is in force.
# shellcheck source=/dev/null
. "$RUN/env"

while read -r dir; do
    mkdir -p "$dir"
    mount -t hostfs -o "ro,$dir" hostfs "$dir"
done < "$RUN/ro"
IFS=: read -r -a rw_dirs <<< "${RUNLAMBDA_UML_RW:-}"
for dir in "${rw_dirs[@]}"; do
    mkdir -p "$dir"
    mount -t hostfs -o "$dir" hostfs "$dir"
done

controllers=${RUNLAMBDA_UML_CONTROLLERS-+cpu +memory +pids +io}
if [ "${RUNLAMBDA_UML_V1_MEMORY:-}" = 1 ]; then
    # The development hosts' hybrid layout. A controller lives in one
    # hierarchy at a time: memory stays out of the v2 subtree_control.
    mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
    mkdir /sys/fs/cgroup/memory /sys/fs/cgroup/unified
    mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory
    mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup/unified
    v2=/sys/fs/cgroup/unified
    controllers=${controllers//+memory/}
else
    mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
    v2=/sys/fs/cgroup
fi
if [ -n "${controllers// /}" ]; then
    echo "$controllers" > "$v2/cgroup.subtree_control"
fi

echo uml-guest > /proc/sys/kernel/hostname
if command -v ip > /dev/null; then ip link set lo up; fi
mapfile -d '' -t cmd < "$RUN/cmd"
cwd=$(cat "$RUN/cwd")
cd "$cwd" || fail "the working directory $cwd is not visible in the guest"
token=$(cat "$RUN/token")
trap - ERR

echo "$token begin"
# CMD writes to a file, not to the console: it sees no tty, as under a test
# harness on the host (no colours). tail copies the file to the console until
# CMD exits, even if CMD leaves a daemon holding its stdout open.
# The file must exist before tail starts, or tail gives up at once.
out=/run/uml-guest-output
: > "$out"
"${cmd[@]}" < /dev/null >> "$out" 2>&1 &
pid=$!
tail -n +1 -s 0.1 --pid="$pid" -f "$out"
wait "$pid" && rc=0 || rc=$?
echo "$token end"
echo "$rc" > "$RUN/rc"
power_off
