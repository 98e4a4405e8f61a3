#!/usr/bin/env bash
# README's install and quick start as a newcomer pastes them, on a throwaway HOME and install
# root: `cargo install --path .` (debug profile, sharing target/ with the tests, so it only
# links), then `lynxio --version`, `lynxio ca install` (NSS db in the throwaway home; the
# system store under a throwaway root), `lynxio --listen … --mitm '*'` and curl through it to a
# local TLS origin and to the CA page and PAC file, `lynxio ca uninstall`.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/lynxio-quickstart.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
# The toolchain stays where it is; everything lynxio reads from HOME moves.
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export HOME="$WORK/home"
unset XDG_DATA_HOME
mkdir -p "$HOME"

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
    cargo install --path . --locked --debug --quiet --root "$WORK/usr"
export PATH="$WORK/usr/bin:$PATH"
# has PATTERN TEXT: TEXT has a line matching PATTERN. (Not `cmd | grep -q`: grep stops at its
# first match, and under pipefail the writer's EPIPE would fail the script at random.)
has() { grep -q -- "$1" <<<"$2"; }
lynxio --version

# A Chromium NSS database in the new home, when certutil is there.
if command -v certutil >/dev/null; then
    mkdir -p "$HOME/.pki/nssdb"
    certutil -N --empty-password -d "sql:$HOME/.pki/nssdb"
fi
mkdir -p "$WORK/root/etc/pki/ca-trust/source/anchors"
lynxio ca install --system-root "$WORK/root"
has unchanged "$(lynxio ca install --system-root "$WORK/root")"
if command -v certutil >/dev/null; then
    has "lynxio CA" "$(certutil -L -d "sql:$HOME/.pki/nssdb")"
fi

# A TLS origin on loopback (its certificate pinned with --upstream-ca).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/key.pem" -out "$WORK/origin.pem" 2>/dev/null
(cd "$WORK" && exec openssl s_server -quiet -accept 0 -cert origin.pem -key key.pem -www \
    >"$WORK/s_server.out" 2>&1) &
PIDS+=($!)
for _ in $(seq 100); do
    port=$(ss -Hltnp 2>/dev/null | awk -v pid="${PIDS[0]}" '$0 ~ "pid="pid"," { sub(".*:", "", $4); print $4; exit }')
    [ -n "${port:-}" ] && break
    sleep 0.1
done
[ -n "${port:-}" ] || { echo "TLS origin did not start"; exit 1; }

lynxio --listen 127.0.0.1:0 --mitm '*' --upstream-ca "$WORK/origin.pem" >"$WORK/ready" 2>"$WORK/log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$WORK/ready" && break; sleep 0.1; done
proxy=$(sed -n 's/.*listening on \([^ ,]*\).*/\1/p' "$WORK/ready")
[ -n "$proxy" ] || { cat "$WORK/log"; exit 1; }

has s_server "$(curl -sS --fail --cacert "$(lynxio ca path)" -x "http://$proxy" "https://localhost:$port/")"
has "lynxio ca install" "$(curl -sS --fail -x "http://$proxy" http://lynxio.ca/)"
has "BEGIN CERTIFICATE" "$(curl -sS --fail -x "http://$proxy" http://lynxio.ca/cert)"
has "PROXY $proxy" "$(curl -sS --fail "http://$proxy/proxy.pac")"
lynxio check-config --listen 127.0.0.1:8080 >/dev/null
has lynxio "$(lynxio completions bash)"
has '^.TH lynxio' "$(lynxio man)"

lynxio ca uninstall --system-root "$WORK/root"
[ ! -e "$WORK/root/etc/pki/ca-trust/source/anchors/lynxio-ca.pem" ]
echo "README quick start: ok"
