/**
 * The shipped JSON Schema equals the one generated from the zod schema, documents every field,
 * and (checked with a small draft-07 validator written here) accepts the issue's example and rejects bad files.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runConfigJsonSchema, runConfigJsonSchemaText } from '../../../trainer/config/json_schema';
import { EXAMPLE_RUN_CONFIG as ISSUE_EXAMPLE } from '../../../trainer/config/example';

const SCHEMA_FILE = path.resolve(__dirname, '..', '..', '..', 'trainer', 'config', 'lora-run.schema.json');
type Schema = Record<string, unknown>;

/** The subset of draft-07 that the generated schema uses. Returns the problems found, as "path: what". */
function validate(schema: Schema, value: unknown, at = '$'): string[] {
  const errs: string[] = [];
  if (schema.anyOf) {
    const ok = (schema.anyOf as Schema[]).some((s) => validate(s, value, at).length === 0);
    return ok ? [] : [`${at}: matches no alternative`];
  }
  const type = schema.type as string | undefined;
  const typeOk: Record<string, (v: unknown) => boolean> = {
    object: (v) => !!v && typeof v === 'object' && !Array.isArray(v),
    array: Array.isArray,
    string: (v) => typeof v === 'string',
    number: (v) => typeof v === 'number',
    integer: (v) => Number.isInteger(v),
    boolean: (v) => typeof v === 'boolean',
    null: (v) => v === null,
  };
  if (type && !typeOk[type](value)) return [`${at}: not ${type}`];
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) errs.push(`${at}: not in enum`);
  if ('const' in schema && schema.const !== value) errs.push(`${at}: not the const`);
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errs.push(`${at}: below minimum`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errs.push(`${at}: above maximum`);
    if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum) errs.push(`${at}: not above exclusiveMinimum`);
    if (typeof schema.exclusiveMaximum === 'number' && value >= schema.exclusiveMaximum) errs.push(`${at}: not below exclusiveMaximum`);
  }
  if (typeof value === 'string' && typeof schema.minLength === 'number' && value.length < schema.minLength) errs.push(`${at}: too short`);
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => errs.push(...validate(schema.items as Schema, v, `${at}[${i}]`)));
  if (type === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const req of (schema.required ?? []) as string[]) if (!(req in obj)) errs.push(`${at}.${req}: required`);
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) errs.push(...validate(props[k], v, `${at}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${at}.${k}: additional property`);
      else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
        errs.push(...validate(schema.additionalProperties as Schema, v, `${at}.${k}`));
      }
    }
  }
  return errs;
}

describe('lora-run.schema.json', () => {
  it('is the freshly generated schema (run `node --import tsx trainer/config/write_schema.ts` after changing the zod schema)', () => {
    assert.equal(fs.readFileSync(SCHEMA_FILE, 'utf8'), runConfigJsonSchemaText());
  });

  it('is draft-07, closed (additionalProperties false) and documents every field', () => {
    const schema = runConfigJsonSchema();
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
    const walk = (s: Schema, at: string) => {
      assert.equal(s.additionalProperties, false, `${at} is closed`);
      for (const [k, p] of Object.entries(s.properties as Record<string, Schema>)) {
        assert.ok(typeof p.description === 'string' && p.description.length > 5, `${at}.${k} has a description`);
        if (p.type === 'object' && p.properties) walk(p, `${at}.${k}`);
      }
    };
    walk(schema, '$');
  });

  it('accepts the issue example and a minimal file; rejects unknown fields, bad enums and out-of-range values', () => {
    const schema = runConfigJsonSchema();
    assert.deepEqual(validate(schema, ISSUE_EXAMPLE), []);
    assert.deepEqual(validate(schema, { $schema: './lora-run.schema.json', model: 'gpt2', data: { train: 't.jsonl' } }), []);
    const bad = structuredClone(ISSUE_EXAMPLE) as unknown as Record<string, Record<string, unknown>>;
    bad.training.learning_rat = 1;
    bad.training.lr_scheduler_type = 'cosin';
    bad.lora.lora_dropout = 1;
    bad.lora.init_lora_weights = 'gaussian';
    assert.deepEqual(validate(schema, bad).sort(), [
      '$.lora.lora_dropout: not below exclusiveMaximum',
      '$.training.learning_rat: additional property',
      '$.training.lr_scheduler_type: not in enum',
    ]);
    assert.deepEqual(validate(schema, { data: { train: 't' } }), ['$.model: required']);
  });
});
