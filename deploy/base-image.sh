#!/usr/bin/env bash
# Makes localhost/pairpref-base:trixie, a stand-in for node:20-bookworm-slim for machines that cannot
# pull images (CI, this sandbox) but can reach a Debian mirror and the npm registry:
#   debootstrap --variant=minbase trixie + Debian's nodejs (20.x, no recommends) + npm from the npm
#   registry in /usr/local/lib/node_modules/npm (where the official node images keep theirs; Debian's
#   own npm package would pull in gcc, python3 and ~380 packages, ~500 MB).
# Like node:20-bookworm-slim it has node and npm and no tini, and apt works inside it.
#
# Reused when an image with this tag and this recipe (label pairpref.base-recipe = a hash of this file
# and the arguments below) already exists; PAIRPREF_REBUILD_BASE=1 forces a rebuild.
#
# Environment (all optional):
#   PAIRPREF_BASE_IMAGE    tag to create (default localhost/pairpref-base:trixie)
#   PAIRPREF_DEBIAN_MIRROR Debian mirror (default: the first non-security Debian URI in this machine's
#                          /etc/apt/sources.list*, else http://deb.debian.org/debian)
#   PAIRPREF_BASE_NPM      npm version put in the image (default 10.8.2, the one node 20.19 bundles)
# Needs: root, podman, debootstrap, npm on the host (only to download the npm tarball).
set -euo pipefail

TAG=${PAIRPREF_BASE_IMAGE:-localhost/pairpref-base:trixie}
SUITE=trixie
NPM_VERSION=${PAIRPREF_BASE_NPM:-10.8.2}

log() { printf '[base-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

detect_mirror() {
  local f uri
  # deb822 .sources files: "URIs: http://deb.debian.org/debian" (skip -security); one-line .list files.
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
    [[ -n $uri ]] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp):/) { if ($i ~ /\/debian\/?$/) { print $i; exit } else break } }' "$f")
    [[ -n $uri ]] && { echo "${uri%/}"; return; }
  done
  echo http://deb.debian.org/debian
}
MIRROR=${PAIRPREF_DEBIAN_MIRROR:-$(detect_mirror)}

RECIPE=$( { cat "${BASH_SOURCE[0]}"; echo "$SUITE $MIRROR $NPM_VERSION"; } | sha256sum | cut -c1-16)

if [[ ${PAIRPREF_REBUILD_BASE:-0} != 1 ]] && podman image exists "$TAG"; then
  have=$(podman image inspect --format '{{index .Labels "pairpref.base-recipe"}}' "$TAG" 2>/dev/null || true)
  if [[ $have == "$RECIPE" ]]; then
    log "reusing $TAG (recipe $RECIPE)"
    exit 0
  fi
  log "$TAG exists with recipe '${have}', this script's is $RECIPE: rebuilding"
fi

for tool in podman debootstrap npm chroot; do
  command -v "$tool" >/dev/null || { log "missing $tool (apt-get install podman debootstrap; npm comes with node)"; exit 1; }
done

WORK=$(mktemp -d /var/tmp/pairpref-base.XXXXXX)
cleanup() {
  # debootstrap may leave /proc or /sys mounted in the target when it fails half-way.
  local m
  for m in proc sys dev/pts dev; do
    if mountpoint -q "$WORK/rootfs/$m" 2>/dev/null; then umount -l "$WORK/rootfs/$m" || true; fi
  done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

ROOT=$WORK/rootfs
log "debootstrap --variant=minbase $SUITE from $MIRROR"
t0=$SECONDS
if ! debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
  tail -n 30 "$WORK/debootstrap.log" >&2
  [[ -f $ROOT/debootstrap/debootstrap.log ]] && tail -n 30 "$ROOT/debootstrap/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
fi
log "debootstrap done in $((SECONDS - t0)) s"

log "apt-get install nodejs (no recommends) in the rootfs"
t0=$SECONDS
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
  /bin/sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends nodejs && apt-get clean && rm -rf /var/lib/apt/lists/*' \
  >"$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; log "apt-get in the rootfs failed"; exit 1; }
log "nodejs $(chroot "$ROOT" /usr/bin/node --version) installed in $((SECONDS - t0)) s"

log "npm $NPM_VERSION from the registry into /usr/local/lib/node_modules/npm"
t0=$SECONDS
tgz=$(cd "$WORK" && npm pack "npm@$NPM_VERSION" --silent --ignore-scripts 2>/dev/null | tail -n 1)
mkdir -p "$ROOT/usr/local/lib/node_modules/npm" "$ROOT/usr/local/bin"
tar -xzf "$WORK/$tgz" -C "$ROOT/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
log "npm $(chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin npm --version) in $((SECONDS - t0)) s"

rm -rf "$ROOT/var/cache/apt/"*.bin "$ROOT/var/log/"*.log "$ROOT/var/log/apt" "$ROOT/debootstrap"

log "podman import -> $TAG"
t0=$SECONDS
podman rmi --force "$TAG" >/dev/null 2>&1 || true
tar --numeric-owner -C "$ROOT" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL pairpref.base-recipe=$RECIPE" \
  --change "LABEL pairpref.base-source=debootstrap-$SUITE-minbase+nodejs+npm-$NPM_VERSION" \
  --change 'CMD ["node"]' \
  --quiet - "$TAG" >/dev/null
log "imported $TAG ($(podman image inspect --format '{{.Size}}' "$TAG") bytes) in $((SECONDS - t0)) s"
