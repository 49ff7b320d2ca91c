#!/usr/bin/env bash
# Builds the container images the tests and the compose check need from Debian's packages alone (no image
# registry): debootstrap --variant=minbase, a few files of ours, then `docker import`.
#
#   deploy/images/build.sh mariadb redis nginx s3 python   # prints NAME=TAG per image, builds what is missing
#
# Each image is tagged pixyproxy-debian/NAME:HASH, HASH covering everything that went in (suite, packages,
# our files, BUILD_VERSION): an engine that has the tag builds nothing again. Downloaded .deb files are kept
# in $PIXYPROXY_DEBOOTSTRAP_CACHE (default /var/cache/pixyproxy-debootstrap) for the next build.
# DEBIAN_MIRROR overrides debootstrap's default mirror.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${PIXYPROXY_DEBOOTSTRAP_CACHE:-/var/cache/pixyproxy-debootstrap}"
DOCKER="${DOCKER:-docker}"

# name|suite|packages|entrypoint (JSON)|cmd (JSON)|env (space-separated K=V)
recipe() {
  case "$1" in
    mariadb) echo 'bookworm|mariadb-server|["/usr/local/bin/pixyproxy-entrypoint"]|[]|' ;;
    redis) echo 'bookworm|redis-server|[]|["redis-server","--protected-mode","no","--save","","--appendonly","no"]|' ;;
    nginx) echo 'bookworm|nginx-light,gettext-base|["/usr/local/bin/pixyproxy-entrypoint"]|["nginx","-g","daemon off;"]|' ;;
    # Debian's own S3-compatible server: moto's standalone server (MinIO, Garage, SeaweedFS are not
    # packaged; Ceph's radosgw needs a whole Ceph cluster). Trixie's moto has conditional writes.
    # debootstrap resolves no virtual packages: python3-cffi-backend provides the ones cryptography needs.
    s3) echo 'trixie|python3-moto,python3-flask,python3-flask-cors,python3-cffi-backend|["/usr/local/bin/pixyproxy-entrypoint"]|[]|' ;;
    # The service image's base in CI: the same Python 3.11 as python:3.11-slim-bookworm.
    python) echo 'bookworm|python3,python3-venv,python-is-python3,ca-certificates|[]|["python3"]|LANG=C.UTF-8' ;;
    *) echo "unknown image: $1" >&2; return 1 ;;
  esac
}

# Bump when build() changes what goes into every image.
BUILD_VERSION=1

# The building machine's own certificate authorities (a TLS-inspecting proxy's, say): the Python base
# trusts them too, so `pip install` in an image build on top of it reaches the index as this machine does.
local_cas() {
  find /usr/local/share/ca-certificates -name '*.crt' 2>/dev/null | LC_ALL=C sort
}

image_hash() {
  local name="$1"
  {
    echo "$BUILD_VERSION"
    recipe "$name"
    if [ -d "$HERE/$name" ]; then (cd "$HERE/$name" && find . -type f | LC_ALL=C sort | xargs sha256sum); fi
    if [ "$name" = python ]; then local_cas | xargs -r cat; fi
  } | sha256sum | cut -c1-12
}

build() {
  local name="$1" tag="$2" suite packages entrypoint cmd env root
  IFS='|' read -r suite packages entrypoint cmd env <<<"$(recipe "$name")"
  root="$(mktemp -d /var/tmp/pixyproxy-rootfs-XXXXXX)"
  mkdir -p "$CACHE"
  echo "building $tag: debootstrap $suite + $packages" >&2
  # Each image its own package cache: debootstraps running side by side on one cache read each other's
  # half-downloaded packages. A second try for a mirror's hiccup.
  mkdir -p "$CACHE/$name"
  local try
  for try in 1 2; do
    # shellcheck disable=SC2086
    debootstrap --variant=minbase --cache-dir="$CACHE/$name" --include="$packages" "$suite" "$root" \
      ${DEBIAN_MIRROR:-} >"$root.log" 2>&1 && break
    tail -30 "$root.log" >&2
    rm -rf "$root" && mkdir -p "$root"
    [ "$try" = 2 ] && { rm -rf "$root" "$root.log"; return 1; }
    echo "building $tag: debootstrap failed, trying once more" >&2
  done
  rm -f "$root.log"
  if [ -d "$HERE/$name" ]; then cp -a "$HERE/$name/." "$root/"; fi
  if [ "$name" = python ] && [ -n "$(local_cas)" ]; then
    local_cas | xargs -r cp -t "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  if [ -x "$root/usr/local/bin/pixyproxy-setup" ]; then chroot "$root" /usr/local/bin/pixyproxy-setup; fi
  # What an image does not need: package caches and lists, documentation, translations.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/usr/local/bin/pixyproxy-setup
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
  local changes=(--change "ENTRYPOINT $entrypoint" --change "CMD $cmd"
    --change "LABEL org.opencontainers.image.source.recipe=$name-$suite")
  for pair in $env; do changes+=(--change "ENV $pair"); done
  tar -C "$root" --numeric-owner -c . | "$DOCKER" import "${changes[@]}" - "$tag" >/dev/null
  rm -rf "$root"
}

[ $# -gt 0 ] || set -- mariadb redis nginx s3 python
# The missing images are built side by side (each mostly waits on downloads and dpkg), then named in order.
declare -A tags building
for name in "$@"; do
  tags[$name]="pixyproxy-debian/$name:$(image_hash "$name")"
  if ! "$DOCKER" image inspect "${tags[$name]}" >/dev/null 2>&1; then
    build "$name" "${tags[$name]}" &
    building[$name]=$!
  fi
done
failed=0
for name in "${!building[@]}"; do wait "${building[$name]}" || { echo "building $name failed" >&2; failed=1; }; done
[ "$failed" = 0 ] || exit 1
for name in "$@"; do echo "$name=${tags[$name]}"; done
