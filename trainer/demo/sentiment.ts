/**
 * The demo's labelled sentiment data, generated from templates with a seeded RNG: short movie reviews,
 * labelled "negative" or "positive" (string labels: training maps them to ids in sorted order, 0 negative and
 * 1 positive, and the names travel with the adapter into the merged model's id2label). Train and eval rows are drawn independently (held out).
 * Generated, not downloaded, so the demo needs no network.
 */
import { Rng } from '../util/rng';

const POSITIVE = ['good', 'great', 'excellent', 'wonderful', 'amazing', 'delightful', 'superb', 'brilliant', 'lovely', 'fantastic', 'charming', 'enjoyable', 'moving', 'beautiful', 'fun', 'gripping'];
const NEGATIVE = ['bad', 'awful', 'terrible', 'boring', 'dull', 'horrible', 'poor', 'weak', 'painful', 'tedious', 'bland', 'messy', 'annoying', 'lifeless', 'clumsy', 'forgettable'];
const SUBJECTS = ['the movie', 'the film', 'this show', 'the plot', 'the acting', 'the script', 'the ending', 'the soundtrack', 'the cast', 'the story', 'the director', 'the pacing'];
const ADVERBS = ['really', 'very', 'quite', 'truly', 'so', 'pretty', 'rather'];
const TEMPLATES: Array<(s: string, a: string, b: string, adv: string) => string> = [
  (s, a) => `${s} was ${a}`,
  (s, a, _b, adv) => `${s} is ${adv} ${a}`,
  (s, a) => `i thought ${s} was ${a}`,
  (s, a, b) => `honestly ${s} felt ${a} and ${b}`,
  (s, a, _b, adv) => `overall ${s} was ${adv} ${a} to watch`,
  (s, a) => `my friends said ${s} is ${a}`,
  (s, a, b) => `${a} and ${b} , that is ${s}`,
];

/** Every word the templates use, so the demo tokenizer can give each one a single token. */
export const DEMO_WORDS = [...new Set([...POSITIVE, ...NEGATIVE, ...SUBJECTS.flatMap((s) => s.split(' ')), ...ADVERBS,
  ...TEMPLATES.flatMap((t) => t('', '', '', '').split(' ')).filter((w) => /^[a-z]+$/.test(w))])];

export const DEMO_LABELS = ['negative', 'positive'] as const;

export interface SentimentRow {
  text: string;
  label: (typeof DEMO_LABELS)[number];
}

export function sentimentRows(n: number, seed: number): SentimentRow[] {
  const rng = new Rng(seed);
  const pick = <T>(a: T[]) => a[rng.int(a.length)];
  const rows: SentimentRow[] = [];
  for (let i = 0; i < n; i++) {
    const label = rng.int(2);
    const words = label ? POSITIVE : NEGATIVE;
    rows.push({ text: pick(TEMPLATES)(pick(SUBJECTS), pick(words), pick(words), pick(ADVERBS)), label: DEMO_LABELS[label] });
  }
  return rows;
}
