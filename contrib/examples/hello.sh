#!/usr/bin/env bash
# Builds a busybox bundle in a temporary directory and takes it through runlambda's lifecycle:
# create, state, start, wait for the process, state, delete. Run as root after
# `cargo build --release`; needs a static busybox (Debian: busybox-static).
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
runlambda=${RUNLAMBDA:-$here/target/$(rustc -vV | sed -n "s/^host: //p")/release/runlambda}
busybox=$(command -v busybox || true)
[ -x "$runlambda" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -n "$busybox" ] || { echo "install busybox-static first" >&2; exit 1; }

work=$(mktemp -d)
id=hello-$$
cleanup() { "$runlambda" --root "$work/state" delete --force "$id" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/bin"
cp "$busybox" "$work/bundle/rootfs/bin/busybox"
for applet in sh echo hostname df tail ls cat; do ln -s busybox "$work/bundle/rootfs/bin/$applet"; done
cat > "$work/bundle/config.json" <<JSON
{
  "ociVersion": "1.2.0",
  "process": {
    "args": ["sh", "-c", "echo \"pid \$\$ on \$(hostname)\"; df -m /tmp | tail -n 1; ls /proc | grep -c '^[0-9]' | sed 's/^/processes visible: /'"],
    "env": ["PATH=/bin"],
    "cwd": "/",
    "user": {"uid": 0, "gid": 0}
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "hello-lambda",
  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
  "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                           {"type": "ipc"}, {"type": "network"}, {"type": "cgroup"}]},
  "annotations": {"com.runlambda.ephemeral-storage-mb": "512"}
}
JSON
for applet in grep sed; do ln -s busybox "$work/bundle/rootfs/bin/$applet"; done

rl() { "$runlambda" --root "$work/state" "$@"; }
rl create --bundle "$work/bundle" --pid-file "$work/pid" "$id"
echo "--- state after create"; rl state "$id"
rl start "$id"
# The init is our child (runlambda clones it with CLONE_PARENT): wait for it like a shim would.
pid=$(cat "$work/pid")
while [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do sleep 0.05; done
echo "--- state after the process exited"; rl state "$id" | grep '"status"'
rl delete "$id"
echo "--- deleted; containers left: $(rl list --quiet | wc -l)"
