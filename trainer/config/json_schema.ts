/**
 * The JSON Schema (draft-07, which VS Code's json.schemas / jsonValidation support best) of the run config,
 * generated from the zod schema so the two cannot disagree. Shipped as trainer/config/lora-run.schema.json.
 */
import { z } from 'zod';
import { RunConfigSchema } from './schema';

/** The schema object: input shape (defaults shown, fields with defaults optional), additionalProperties false. */
export function runConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(RunConfigSchema, {
    target: 'draft-7',
    io: 'input',
    override: (ctx) => {
      // zod bounds integers to the safe range; that is noise in an editor tooltip
      const s = ctx.jsonSchema as Record<string, unknown>;
      if (s.type === 'integer') {
        if (s.minimum === Number.MIN_SAFE_INTEGER) delete s.minimum;
        if (s.maximum === Number.MAX_SAFE_INTEGER) delete s.maximum;
      }
    },
  }) as Record<string, unknown>;
}

/** The exact text of lora-run.schema.json. */
export function runConfigJsonSchemaText(): string {
  return JSON.stringify(runConfigJsonSchema(), null, 2) + '\n';
}
