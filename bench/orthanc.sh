# Shared by the benchmarks that run Orthanc beside mira (sourced, not run): starting and
# stopping a fresh Orthanc on loopback, counting what it stored, and the small helpers of the
# reports. The sourcing script sets work (its temporary folder), orthanc (the binary), SETTLE
# and bench_name (for messages), and installs `trap 'stop_orthanc; rm -rf "$work"' EXIT`.
#
# Orthanc 1.10 has no setting for the address it listens on: it binds its HTTP and DICOM
# ports on every interface. Run as root, it runs in a network namespace of its own whose only
# interface is loopback (and its clients join it through in_ns), so nothing outside this
# machine's 127.0.0.1 can reach it and no port of the host is taken. Otherwise it runs in the
# host's namespace on free ports with RemoteAccessAllowed false (HTTP from 127.0.0.1 only).

orthanc_pid=
netns=false
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v nsenter >/dev/null &&
    command -v ip >/dev/null && unshare -n true 2>/dev/null; then
    netns=true
fi

# Run a command where Orthanc's ports are: in its namespace, or here.
in_ns() {
    if $netns; then nsenter -t "$orthanc_pid" -n -- "$@"; else "$@"; fi
}

stop_orthanc() {
    [ -n "$orthanc_pid" ] || return 0
    kill "$orthanc_pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$orthanc_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$orthanc_pid" 2>/dev/null || true
    wait "$orthanc_pid" 2>/dev/null || true
    orthanc_pid=
}

free_port() { # a TCP port nothing listens on at 127.0.0.1 (different from $1)
    python3 - "${1:-0}" <<'EOF'
import socket, sys
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    if p != int(sys.argv[1]):
        print(p)
        break
EOF
}

# Start a new Orthanc with its own storage and index in $work/$1 (sets http_port, dicom_port).
start_orthanc() {
    local d=$work/$1
    discard "$d"
    mkdir -p "$d/storage" "$d/index" "$d/tmp"
    http_port=$(free_port)
    dicom_port=$(free_port "$http_port")
    cat >"$d/orthanc.json" <<EOF
{
  "Name": "mira-bench",
  "StorageDirectory": "$d/storage",
  "IndexDirectory": "$d/index",
  "TemporaryDirectory": "$d/tmp",
  "Plugins": [],
  "HttpPort": $http_port,
  "DicomPort": $dicom_port,
  "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "HttpCompressionEnabled": false,
  "StorageCompression": false,
  "SyncStorageArea": true,
  "OverwriteInstances": false,
  "SaveJobs": false
}
EOF
    # TCP_NODELAY=1: DCMTK's switch (Debian's build leaves Nagle on), else every C-STORE
    # response waits for a delayed ACK (about 40 ms) and storescu would measure that.
    if $netns; then
        TCP_NODELAY=1 unshare -n -- sh -c 'ip link set lo up && exec "$0" "$1"' \
            "$orthanc" "$d/orthanc.json" >"$d/orthanc.log" 2>&1 &
    else
        TCP_NODELAY=1 "$orthanc" "$d/orthanc.json" >"$d/orthanc.log" 2>&1 &
    fi
    orthanc_pid=$!
    local host_ns
    host_ns=$(readlink /proc/self/ns/net)
    for ((i = 0; i < 600; i++)); do
        if kill -0 "$orthanc_pid" 2>/dev/null &&
            { ! $netns || [ "$(readlink "/proc/$orthanc_pid/ns/net" 2>/dev/null)" != "$host_ns" ]; } &&
            in_ns curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$http_port/system" 2>/dev/null; then
            return 0
        fi
        kill -0 "$orthanc_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$bench_name: Orthanc did not start; its log:" >&2
    cat "$d/orthanc.log" >&2
    exit 1
}

orthanc_count() {
    in_ns curl -sf --max-time 30 "http://127.0.0.1:$http_port/statistics" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["CountInstances"])' 2>/dev/null || echo 0
}

# Whether the file system of $work journals (ext4 shows its journal thread in /sys/fs/ext4).
journal_state() {
    local dev task
    dev=$(basename "$(df "$work" | awk 'NR==2{print $1}')")
    task=$(cat "/sys/fs/ext4/$dev/journal_task" 2>/dev/null || true)
    case $task in
    "") echo "not ext4, or not known" ;;
    "<none>") echo "ext4 without a journal (fsync writes the inode and its folder's entry, then flushes)" ;;
    *) echo "ext4 with a journal" ;;
    esac
}

# Put a run's output aside; settle deletes it after the round (see the top).
discard() {
    [ -e "$1" ] || return 0
    mkdir -p "$work/trash"
    mv "$1" "$work/trash/$(basename "$1").$RANDOM$RANDOM"
}
settle() {
    rm -rf "$work/trash"
    sync
    sleep "$SETTLE"
}

seconds_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN{printf "%.6f", (b - a) / 1e9}'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN{ if (s > 0) printf "%.1f", n / s; else print 0 }'; }


median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.1f", a/b; else print "n/a" }'; }
