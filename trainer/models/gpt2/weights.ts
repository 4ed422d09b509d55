/**
 * Every weight a GPT-2 checkpoint holds, by its Hugging Face key (with the `transformer.` prefix, as
 * GPT2LMHeadModel / GPT2ForSequenceClassification write it), with its shape. Conv1D weights are [in, out].
 * The loader asserts every key and shape against this list; the tiny-model builder writes exactly this list.
 */
import { type GPT2Config, innerDim } from './config';
import type { Task } from '../../task';

export const PREFIX = 'transformer.';

/** Buffers that some checkpoints carry and we ignore: the causal mask and its fill value. */
export const IGNORED_BUFFER = /(^|\.)attn\.(bias|masked_bias)$/;

export function gpt2WeightShapes(c: GPT2Config, task: Task, numLabels = 2): Map<string, number[]> {
  const C = c.n_embd;
  const I = innerDim(c);
  const m = new Map<string, number[]>();
  m.set(`${PREFIX}wte.weight`, [c.vocab_size, C]);
  m.set(`${PREFIX}wpe.weight`, [c.n_positions, C]);
  for (let i = 0; i < c.n_layer; i++) {
    const h = `${PREFIX}h.${i}.`;
    m.set(`${h}ln_1.weight`, [C]);
    m.set(`${h}ln_1.bias`, [C]);
    m.set(`${h}attn.c_attn.weight`, [C, 3 * C]);
    m.set(`${h}attn.c_attn.bias`, [3 * C]);
    m.set(`${h}attn.c_proj.weight`, [C, C]);
    m.set(`${h}attn.c_proj.bias`, [C]);
    m.set(`${h}ln_2.weight`, [C]);
    m.set(`${h}ln_2.bias`, [C]);
    m.set(`${h}mlp.c_fc.weight`, [C, I]);
    m.set(`${h}mlp.c_fc.bias`, [I]);
    m.set(`${h}mlp.c_proj.weight`, [I, C]);
    m.set(`${h}mlp.c_proj.bias`, [C]);
  }
  m.set(`${PREFIX}ln_f.weight`, [C]);
  m.set(`${PREFIX}ln_f.bias`, [C]);
  if (task === 'seq-cls') m.set('score.weight', [numLabels, C]);
  return m;
}

/** GPT-2's blocks use Conv1D (weight [in, out]); the heads lm_head and score are nn.Linear (weight [out, in]). */
export function isConv1D(moduleName: string): boolean {
  return /(^|\.)h\.\d+\.(attn|mlp)\.(c_attn|c_proj|c_fc)$/.test(moduleName);
}
