#!/usr/bin/env bash
# install-pgvector.sh - install the pgvector extension into the machine's native
# Debian PostgreSQL (default: the newest major under /usr/lib/postgresql), using
# only the Debian archive. Called by .ci/run so the PostgreSQL suites run with
# vectors (hybrid search) instead of lexical-only; also fine to run by hand.
# Tested on Debian bookworm (PostgreSQL 15).
#
# Bookworm has no postgresql-15-pgvector, and trixie/sid ship binaries only
# for PG 17/18. So this fetches Debian's *source* package "pgvector" from a
# newer suite through a throw-away apt config (temp dir; the system's apt
# sources are not touched), then builds it against bookworm's
# postgresql-server-dev-$PG_MAJOR with PGXS and runs `make install`.
# No PostgreSQL restart is needed; afterwards: CREATE EXTENSION vector;
#
# Idempotent: exits at once if vector.control and vector.so are already
# installed for $PG_MAJOR (set FORCE=1 to rebuild anyway).
#
# Environment knobs (all optional):
#   PG_MAJOR=<newest>      PostgreSQL major version to build for
#   PGVECTOR_SUITE=trixie  Debian suite to take the pgvector source from
#   DEBIAN_MIRROR=<URI>      default: the mirror in this machine's own apt sources
#   FORCE=0                1 = rebuild/reinstall even if already present
#   SMOKE_TEST=1           0 = skip the HNSW test in a scratch database
#   PGHOST/PGPORT/PGUSER   server for the smoke test (127.0.0.1/5432/postgres)
set -euo pipefail

FORCE="${FORCE:-0}"
SMOKE_TEST="${SMOKE_TEST:-1}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The server the suites use already offers the extension (installed before, a packaged build,
# or a server elsewhere): nothing to do.
if [ "$FORCE" != 1 ] && command -v psql >/dev/null \
  && [ "$(psql -qXAt -d postgres -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'" 2>/dev/null)" = 1 ]; then
  echo "pgvector is already available on $PGHOST:$PGPORT; nothing to do (FORCE=1 to rebuild)."
  exit 0
fi

PG_MAJOR="${PG_MAJOR:-$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1)}"
[ -n "$PG_MAJOR" ] || { echo "error: no PostgreSQL under /usr/lib/postgresql; install postgresql first" >&2; exit 1; }
PGVECTOR_SUITE="${PGVECTOR_SUITE:-trixie}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$( { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } | awk '/^URIs:/{print $2} /^deb /{print $2}' | grep -v security | head -1 || true)}"
[ -n "$DEBIAN_MIRROR" ] || { echo "no Debian mirror found in the apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
KEYRING="${KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"

_t=$EPOCHREALTIME _t0=$EPOCHREALTIME _step=""
lap() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }
step() { [ -n "$_step" ] && echo "    ($_step: $(lap "$_t")s)"; _step="$1" _t=$EPOCHREALTIME; [ -n "$1" ] && echo "==> $1"; return 0; }

[ -x "$PG_CONFIG" ] || { echo "error: $PG_CONFIG not found (is postgresql-$PG_MAJOR installed?)" >&2; exit 1; }
sharedir="$("$PG_CONFIG" --sharedir)"
pkglibdir="$("$PG_CONFIG" --pkglibdir)"
if [ "$FORCE" != 1 ] && [ -f "$sharedir/extension/vector.control" ] && [ -f "$pkglibdir/vector.so" ]; then
  echo "pgvector already installed for PostgreSQL $PG_MAJOR ($(sed -n "s/^default_version = '\(.*\)'/\1/p" "$sharedir/extension/vector.control")); nothing to do (FORCE=1 to rebuild)."
  exit 0
fi

# A distribution that packages pgvector for this major (trixie: 17, sid: 18): use the package.
if apt-cache show "postgresql-$PG_MAJOR-pgvector" >/dev/null 2>&1; then
  echo "==> installing postgresql-$PG_MAJOR-pgvector from the system's apt sources"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "postgresql-$PG_MAJOR-pgvector"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/pgvector.XXXXXX")"
scratch_db=""
cleanup() {
  if [ -n "$scratch_db" ]; then psql -qX -d postgres -c "DROP DATABASE IF EXISTS $scratch_db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Build dependencies from the system's (bookworm) apt sources.
step "build dependencies (postgresql-server-dev-$PG_MAJOR, build-essential, dpkg-dev)"
need=()
[ -f "/usr/include/postgresql/$PG_MAJOR/server/postgres.h" ] || need+=("postgresql-server-dev-$PG_MAJOR")
{ command -v make && command -v gcc; } >/dev/null || need+=(build-essential)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
if [ "${#need[@]}" -gt 0 ]; then
  inst() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; }
  inst || { as_root apt-get update -q && inst; }
else
  echo "    already present"
fi

# 2. Private apt state in $work pointing at $PGVECTOR_SUITE deb-src only.
step "fetch pgvector source package from Debian $PGVECTOR_SUITE"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/sources.list.d" "$work/src"
echo "deb-src [signed-by=$KEYRING] $DEBIAN_MIRROR $PGVECTOR_SUITE main" >"$work/apt/sources.list"
APT_OPTS=(-qq -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache"
  -o Dir::Etc::sourcelist="$work/apt/sources.list" -o Dir::Etc::sourceparts="$work/apt/sources.list.d"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${APT_OPTS[@]}" update
(cd "$work/src" && apt-get "${APT_OPTS[@]}" source --download-only pgvector)
dsc="$(ls "$work"/src/pgvector_*.dsc)"
echo "    $(basename "$dsc")"
# apt already checked the files' SHA256 against the signed Release file;
# dpkg-source unpacks and applies Debian's patches (e.g. no -march=native).
dpkg-source -x "$dsc" "$work/src/pgvector" >"$work/unpack.log" 2>&1 \
  || { cat "$work/unpack.log" >&2; exit 1; }

# 3. Build against bookworm's server headers and install (PGXS).
step "build"
make -s -C "$work/src/pgvector" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log" >&2; exit 1; }
step "install into $pkglibdir and $sharedir/extension"
as_root make -s -C "$work/src/pgvector" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install >/dev/null

# 4. Smoke test: CREATE EXTENSION + HNSW cosine index in a scratch database.
if [ "$SMOKE_TEST" = 1 ]; then
  step "smoke test (scratch database, HNSW index)"
  if pg_isready -q; then
    scratch_db="pgvector_smoke_$$"
    psql -qX -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $scratch_db"
    out="$(psql -qXAt -v ON_ERROR_STOP=1 -d "$scratch_db" <<'SQL'
CREATE EXTENSION vector;
CREATE TABLE items (id int PRIMARY KEY, embedding vector(3));
INSERT INTO items VALUES (1,'[1,0,0]'),(2,'[0,1,0]'),(3,'[0.9,0.1,0]'),(4,'[0,0,1]');
CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops);
SET enable_seqscan = off;
SELECT extversion FROM pg_extension WHERE extname = 'vector';
SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY embedding <=> '[1,0.05,0]' LIMIT 2) s;
SQL
)"
    psql -qX -d postgres -c "DROP DATABASE $scratch_db"; scratch_db=""
    echo "    extversion=$(sed -n 1p <<<"$out") nearest=$(sed -n 2p <<<"$out")"
    [ "$(sed -n 2p <<<"$out")" = "1,3" ] || { echo "error: unexpected smoke test result" >&2; exit 1; }
  else
    echo "    server at $PGHOST:$PGPORT not reachable; skipped"
  fi
fi
step ""
echo "done in $(lap "$_t0")s: pgvector installed for PostgreSQL $PG_MAJOR; run CREATE EXTENSION vector; (as a superuser) in your database."
