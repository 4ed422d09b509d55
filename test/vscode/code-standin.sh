#!/usr/bin/env bash
# The stand-in `code` executable for @vscode/test-electron and @vscode/test-cli (see code-standin.ts):
# desktop VS Code's test flags in, code-server + Chromium underneath, the tests' exit code out.
here="$(cd "$(dirname "$0")" && pwd)"
exec node --import tsx "$here/code-standin.ts" "$@"
