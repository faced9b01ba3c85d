#!/usr/bin/env bash
# Builds a REAL Kubernetes CRD API server (k8s.io/apiextensions-apiserver, the code kube-apiserver
# uses to serve CRDs) + gets a real etcd, from Debian packages only (no install into the system:
# .debs are downloaded with a private apt config and unpacked with dpkg-deb -x).
#   bash scripts/crd-apiserver/build.sh OUTDIR      -> OUTDIR/bin/{crd-apiserver,etcd}
set -euo pipefail
OUT="$(realpath -m "${1:?usage: $0 OUTDIR}")"; HERE="$(cd "$(dirname "$0")" && pwd)"
A="$OUT/apt"; mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$OUT/debs" "$OUT/root" "$OUT/bin"
# The Debian mirror this machine's own apt sources use (deb822 or one-line format).
MIRROR="${DEBIAN_MIRROR:-$( { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } | awk '/^URIs:/{print $2} /^deb /{print $2}' | grep -v security | head -1 || true)}"
[ -n "$MIRROR" ] || { echo "no Debian mirror found in the apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR sid main" > "$A/sources.list"
: > "$A/status"
APT=(-o Dir::Etc::sourcelist="$A/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$A/lists"
     -o Dir::Cache="$A/cache" -o Dir::State::status="$A/status" -o APT::Install-Recommends=false)
apt-get "${APT[@]}" update -qq
# The dependency closure as if installing on an empty system; keep only Go sources/toolchain and etcd.
apt-get "${APT[@]}" install -s golang-k8s-apiextensions-apiserver-dev golang-go etcd-server \
  | awk '/^Inst (golang-|etcd-server )/{print $2}' > "$OUT/packages.txt"
(cd "$OUT/debs" && xargs apt-get "${APT[@]}" download -qq < "$OUT/packages.txt")
for f in "$OUT"/debs/*.deb; do dpkg-deb -x "$f" "$OUT/root"; done
GOROOT_DIR="$(ls -d "$OUT"/root/usr/lib/go-1.* | sort -V | tail -1)"
export GOROOT="$GOROOT_DIR" PATH="$GOROOT_DIR/bin:$PATH" GOPATH="$OUT/root/usr/share/gocode"
export GO111MODULE=off GOTOOLCHAIN=local CGO_ENABLED=0 GOPROXY=off GOFLAGS= GOCACHE="${GOCACHE:-$OUT/gocache}"
mkdir -p "$GOPATH/src/nexus.dev/crd-apiserver" && cp "$HERE/main.go" "$GOPATH/src/nexus.dev/crd-apiserver/main.go"
go version
nice -n 10 go build -p 2 -trimpath -ldflags='-s -w' -o "$OUT/bin/crd-apiserver" nexus.dev/crd-apiserver
cp "$OUT/root/usr/bin/etcd" "$OUT/bin/etcd"
"$OUT/bin/etcd" --version | sed -n 1p  # sed reads to the end: with pipefail, head exiting first can kill the script with SIGPIPE
echo "built $OUT/bin/crd-apiserver ($(grep -c . "$OUT/packages.txt") Debian packages)"
