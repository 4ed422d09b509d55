/** The seeded random stream of one input: a pure function of (campaign seed, reader, input index). */
import { Rng } from '../../../trainer/util/rng';

/** A 32-bit hash of the reader's name, so each reader gets its own stream of inputs. */
export function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export function inputRng(seed: number, reader: string, index: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ hashName(reader) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
}
