/**
 * Holds out an evaluation split from the training examples, chosen by a seeded shuffle: the same seed
 * gives the same split. Both parts keep the file order (the training loop shuffles per epoch itself).
 */
import { Rng } from '../util/rng';

/** Size of the held-out part, as datasets' train_test_split rounds a float test_size: ceil(n * fraction). */
export function evalCount(n: number, fraction: number): number {
  return fraction > 0 ? Math.max(1, Math.ceil(n * fraction)) : 0;
}

export function splitTrainEval<T>(items: T[], fraction: number, seed: number): { train: T[]; eval: T[] } {
  const nEval = evalCount(items.length, fraction);
  if (nEval === 0) return { train: items.slice(), eval: [] };
  const order = new Rng(seed).shuffle(Array.from({ length: items.length }, (_, i) => i));
  const held = new Set(order.slice(0, nEval));
  const train: T[] = [];
  const evalItems: T[] = [];
  items.forEach((item, i) => (held.has(i) ? evalItems : train).push(item));
  return { train, eval: evalItems };
}
