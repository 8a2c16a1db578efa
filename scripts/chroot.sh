#!/usr/bin/env bash
# Run the whole test suite against another PostgreSQL major version, using
# Debian's own packages of that version inside a Debian chroot:
#
#   PG_MAJOR=17 bash scripts/test [make variables...]
#
# (scripts/test hands over to this script when PG_MAJOR names a version
# other than the host's.)  As root, this script
#   - installs debootstrap from the machine's Debian archive if missing;
#   - prepares, once, a chroot of the Debian release that ships
#     postgresql-$PG_MAJOR (17: Debian 13 "trixie", 18: Debian testing
#     "forky") with that server, its development files, IPC::Run, make and
#     gcc, and keeps it under $MT_CHROOT_CACHE (default
#     /var/cache/migration_tools) as chroot-pg$PG_MAJOR for the next run;
#   - bind-mounts /proc, /dev, /dev/pts and /dev/shm into it (unmounted on
#     exit), copies this tree in, and runs scripts/test there, which builds
#     with -Werror, installs, and runs the tests as the "postgres" user.
#
# The archive is the one the machine's own apt configuration uses (first
# non-security URI in /etc/apt/sources.list.d/*.sources or
# /etc/apt/sources.list), unless MT_DEBIAN_MIRROR says otherwise.
# Environment:
#   PG_MAJOR          PostgreSQL major version (required)
#   MT_CHROOT         chroot directory (default $MT_CHROOT_CACHE/chroot-pgNN)
#   MT_CHROOT_CACHE   where chroots are kept (default /var/cache/migration_tools)
#   MT_CHROOT_SUITE   Debian suite to bootstrap (default per version, below)
#   MT_DEBIAN_MIRROR  archive URI (default: from the apt configuration)
#   MT_CHROOT_PREPARE_ONLY=1  prepare (or check) the chroot, run no test
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
major=${PG_MAJOR:?scripts/chroot.sh: set PG_MAJOR}

die() { echo "scripts/chroot.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mount need it)"
case "$major" in
    17) default_suite=trixie ;;
    18) default_suite=forky ;;
    *)  default_suite= ;;
esac
suite=${MT_CHROOT_SUITE:-$default_suite}
[ -n "$suite" ] || die "no Debian suite known to ship postgresql-$major; set MT_CHROOT_SUITE"
cache=${MT_CHROOT_CACHE:-/var/cache/migration_tools}
root=${MT_CHROOT:-$cache/chroot-pg$major}
packages=(postgresql-$major postgresql-server-dev-$major libipc-run-perl make gcc)

# apt_mirror: print the Debian archive URI of the machine's apt sources
# (deb822 "URIs:" fields first, then one-line "deb" entries), skipping the
# security archive, which has no full release.
apt_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" {
                 i = 2
                 if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                 if (i <= NF) print $i
             }' "$f"
    done
}
mirror=${MT_DEBIAN_MIRROR:-$(apt_mirror | grep -v -- '-security' | grep -E '^(https?|file):' | head -1 || true)}
[ -n "$mirror" ] || die "found no Debian archive in the apt configuration; set MT_DEBIAN_MIRROR"

# mounted_under DIR: list the mount points at or below DIR, deepest first.
mounted_under() {
    awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

# unmount_all DIR: unmount everything mounted inside the chroot DIR.
unmount_all() {
    local m
    for m in $(mounted_under "$1"); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

# mount_all DIR: give the chroot DIR what PostgreSQL, apt and the TAP tests
# need from the kernel: /proc, device nodes, ptys and POSIX shared memory.
mount_all() {
    local d=$1
    mkdir -p "$d/proc" "$d/dev"
    mount -t proc proc "$d/proc"
    mount --bind /dev "$d/dev"
    if [ -d /dev/pts ] && mountpoint -q /dev/pts; then
        mount --bind /dev/pts "$d/dev/pts"
    fi
    if [ -d /dev/shm ] && mountpoint -q /dev/shm; then
        mount --bind /dev/shm "$d/dev/shm"
    fi
}

# remove_tree DIR: delete a (partial) chroot, never following a mount into
# the host's /dev or /proc.
remove_tree() {
    unmount_all "$1"
    [ -z "$(mounted_under "$1")" ] || die "cannot unmount everything under $1"
    rm -rf --one-file-system "$1"
}

in_chroot() { chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "${@:2}"; }

# prepare DIR: bootstrap and provision a new chroot in DIR.
prepare() {
    local d=$1 script=/usr/share/debootstrap/scripts/$suite
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    echo "scripts/chroot.sh: creating the Debian $suite chroot for PostgreSQL $major in $root (from $mirror)"
    debootstrap --variant=minbase "$suite" "$d" "$mirror" "$script" >"$d.log" 2>&1 \
        || { tail -30 "$d.log" >&2; die "debootstrap of $suite failed (log: $d.log)"; }
    # testing's Release file may be past its Valid-Until date in the archive
    # we reach; signatures are still checked
    cat >"$d/etc/apt/apt.conf.d/90migration-tools" <<'EOF'
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
EOF
    echo "deb $mirror $suite main" >"$d/etc/apt/sources.list"
    # no services start in the chroot; no cluster is created by the packages
    printf '#!/bin/sh\nexit 101\n' >"$d/usr/sbin/policy-rc.d"
    chmod +x "$d/usr/sbin/policy-rc.d"
    mkdir -p "$d/etc/postgresql-common"
    echo "create_main_cluster = false" >"$d/etc/postgresql-common/createcluster.conf"
    cp -L /etc/resolv.conf "$d/etc/resolv.conf" 2>/dev/null || true
    mount_all "$d"
    in_chroot "$d" apt-get update -qq >>"$d.log" 2>&1 \
        || { tail -30 "$d.log" >&2; die "apt-get update failed in the $suite chroot"; }
    if ! in_chroot "$d" apt-cache show "postgresql-$major" >/dev/null 2>&1; then
        die "Debian $suite has no postgresql-$major; set MT_CHROOT_SUITE"
    fi
    in_chroot "$d" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confold "${packages[@]}" >>"$d.log" 2>&1 \
        || { tail -30 "$d.log" >&2; die "installing ${packages[*]} failed in the $suite chroot"; }
    in_chroot "$d" apt-get clean
    unmount_all "$d"
    echo "$suite ${packages[*]}" >"$d/.migration-tools-ready"
    rm -f "$d.log"
}

# The EXIT traps below unmount: make INT and TERM exit through them.
trap 'exit 130' INT
trap 'exit 143' TERM

# Only one run at a time per chroot: the mounts and the cache are shared.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
fi

if [ ! -f "$root/.migration-tools-ready" ]; then
    [ -e "$root" ] && remove_tree "$root"
    new=$root.new
    [ -e "$new" ] && remove_tree "$new"
    mkdir -p "$new"
    trap 'unmount_all "$new"' EXIT
    prepare "$new"
    mv "$new" "$root"
    trap - EXIT
fi

[ "${MT_CHROOT_PREPARE_ONLY:-}" = 1 ] && { echo "scripts/chroot.sh: $root is ready"; exit 0; }

# A run: leftover mounts from a killed run go first.
unmount_all "$root"
src=$(mktemp -d "$root/tmp/migration_tools-src.XXXXXX")
trap 'unmount_all "$root"; rm -rf --one-file-system "$src"' EXIT
mount_all "$root"
tar -C "$top" --exclude=./.git --exclude=./tmp_check --exclude=./tmp_check_regress \
    --exclude=./tmp_check_iso --exclude=./results --exclude=./output_iso \
    --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$src" -xf -
inside=/tmp/$(basename "$src")
echo "scripts/chroot.sh: testing with PostgreSQL $major (Debian $suite chroot $root)"
status=0
in_chroot "$root" env MT_IN_CHROOT=1 PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" \
    bash "$inside/scripts/test" "$@" || status=$?
exit $status
