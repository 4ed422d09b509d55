/**
 * Writes trainer/config/lora-run.schema.json from the zod schema.
 * Run: node --import tsx trainer/config/write_schema.ts
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { runConfigJsonSchemaText } from './json_schema';

const target = path.join(__dirname, 'lora-run.schema.json');
writeFileAtomic(target, runConfigJsonSchemaText());
console.log(`wrote ${path.relative(process.cwd(), target)}`);
