#!/usr/bin/env bash
# Build the Pulumi CLI and its Python language host from the Go module proxy (SPEC §13), for
# rehearsing `pulumi up` against the emulated cluster (`orbitlab emulate`). Nothing else
# needs them: the twin and the other tests do not.
#
#   orbitlab emulate build            build into ~/.cache/orbitlab/pulumi/<version>/bin
#   orbitlab emulate build --print    print that bin directory and exit (nothing is built)
#
# It ships inside the lab's wheel (orbitlab_lab/emulate/), so it works without a checkout.
#
# Pinned: the CLI is github.com/pulumi/pulumi/pkg/v3 at PULUMI_VERSION (the newest whose source
# the proxy serves here, and one with `replacement_trigger` in its protocol), built from a
# scratch module (`go install` refuses pkg/v3: its go.mod has replace directives). The Python
# language host is no longer in a module the proxy serves; sdk/v3 at LANGUAGE_HOST_VERSION
# still holds it, with the `pulumi-language-python-exec` script it runs beside it.
# The checksum database is not reachable here: GOSUMDB=off (the module proxy is the trust root).
#
# Skipped when already built with the same recipe (a stamp records it). Environment:
# ORBITLAB_PULUMI_DIR moves the output; GOMODCACHE / GOCACHE are honoured as usual.
set -euo pipefail

PULUMI_VERSION="v3.250.0"
LANGUAGE_HOST_VERSION="v3.60.0"
VERSION_PKG="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"

ROOT="${ORBITLAB_PULUMI_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orbitlab/pulumi/$PULUMI_VERSION}"
BIN="$ROOT/bin"
STAMP="$ROOT/recipe"
RECIPE="pulumi=$PULUMI_VERSION language-python=$LANGUAGE_HOST_VERSION ldflags=-X $VERSION_PKG"

if [ "${1:-}" = "--print" ]; then
  echo "$BIN"
  exit 0
fi

say() { printf '==> %s\n' "$*"; }

built() {
  [ -x "$BIN/pulumi" ] && [ -x "$BIN/pulumi-language-python" ] &&
    [ -x "$BIN/pulumi-language-python-exec" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$RECIPE" ] &&
    [ "$("$BIN/pulumi" version 2>/dev/null)" = "$PULUMI_VERSION" ]
}

if built; then
  say "Pulumi CLI $PULUMI_VERSION already built in $BIN"
  exit 0
fi

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { echo "Go is needed to build the Pulumi CLI" >&2; exit 1; }
export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

# build_from VERSION PACKAGE OUTPUT MODULE@VERSION...: a scratch module requiring the modules
# builds PACKAGE into OUTPUT, with VERSION stamped in. The scratch module stays in src/<name>.
build_from() {
  local version=$1 package=$2 output=$3
  shift 3
  local work
  work="$ROOT/src/$(basename "$output")"
  rm -rf "$work" && mkdir -p "$work"
  (
    cd "$work"
    go mod init orbitlab.local/build >/dev/null 2>&1
    if ! go get "$@" >go-get.log 2>&1; then
      cat go-get.log >&2
      exit 1
    fi
    go build -trimpath -o "$output" -ldflags "-X $VERSION_PKG=$version" "$package"
  )
}

started=$(date +%s)
rm -f "$STAMP"
mkdir -p "$BIN"

say "building the Pulumi CLI $PULUMI_VERSION (pkg/v3 and sdk/v3 from the Go module proxy)"
build_from "$PULUMI_VERSION" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "$BIN/pulumi" \
  "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"

say "building the Python language host (sdk/v3 $LANGUAGE_HOST_VERSION)"
build_from "$LANGUAGE_HOST_VERSION" \
  github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python \
  "$BIN/pulumi-language-python" "github.com/pulumi/pulumi/sdk/v3@$LANGUAGE_HOST_VERSION"
sdk_dir=$(cd "$ROOT/src/pulumi-language-python" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
rm -rf "$ROOT/src"

version=$("$BIN/pulumi" version)
if [ "$version" != "$PULUMI_VERSION" ]; then
  echo "built pulumi reports version '$version', expected $PULUMI_VERSION" >&2
  exit 1
fi
echo "$RECIPE" >"$STAMP"
say "Pulumi CLI $version and its Python language host built in $BIN in $(($(date +%s) - started)) s"
