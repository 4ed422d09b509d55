#!/usr/bin/env node
// The `lora-studio` command: runs the trainer's CLI from the esbuild output.
const path = require('node:path');
const fs = require('node:fs');
const cli = path.join(__dirname, '..', 'dist', 'trainer', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write(`lora-studio: ${cli} is missing; run \`npm run build\` first.\n`);
  process.exit(2);
}
require(cli).main(process.argv);
