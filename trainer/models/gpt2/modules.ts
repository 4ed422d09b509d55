/**
 * The module table of GPT-2, exactly as PyTorch's `model.named_modules()` lists it for transformers'
 * GPT2LMHeadModel / GPT2ForSequenceClassification: same names, same order (registration order in
 * modeling_gpt2.py), same class names. Built from config.json alone; weights are never read.
 */
import { type GPT2Config, innerDim } from './config';
import { PREFIX } from './weights';
import type { Task } from '../../task';
import type { ModuleInfo, ModuleType } from '../../protocol';

/**
 * The class transformers' ACT2FN instantiates for each activation_function. `GELUTanh` is the current name
 * (older transformers called it PytorchGELUTanh).
 */
const ACTIVATION_CLASS: Record<string, ModuleType> = {
  gelu_new: 'NewGELUActivation',
  gelu: 'GELUActivation',
  gelu_pytorch_tanh: 'GELUTanh',
  relu: 'ReLU',
};

export function activationClass(activation_function: string): ModuleType {
  return ACTIVATION_CLASS[activation_function] ?? ('GELUActivation' as ModuleType);
}

/** Every module of the model, root '' first, in `named_modules()` order. */
export function namedModules(config: GPT2Config, task: Task, num_labels: number): ModuleInfo[] {
  const C = config.n_embd;
  const I = innerDim(config);
  const out: ModuleInfo[] = [];
  /** containers, dropouts and activations own no parameters */
  const bare = (name: string, type: ModuleType) => out.push({ name, type, params: 0, weight_keys: [] });
  const conv1d = (name: string, nx: number, nf: number) =>
    out.push({ name, type: 'Conv1D', in_features: nx, out_features: nf, params: nx * nf + nf, weight_keys: [`${name}.weight`, `${name}.bias`] });
  const layerNorm = (name: string, dim: number) =>
    out.push({ name, type: 'LayerNorm', in_features: dim, out_features: dim, params: 2 * dim, weight_keys: [`${name}.weight`, `${name}.bias`] });
  const embedding = (name: string, num: number, dim: number) =>
    out.push({ name, type: 'Embedding', in_features: num, out_features: dim, params: num * dim, weight_keys: [`${name}.weight`] });

  const t = PREFIX.slice(0, -1); // 'transformer'
  bare('', task === 'seq-cls' ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel');
  bare(t, 'GPT2Model');
  embedding(`${t}.wte`, config.vocab_size, C);
  embedding(`${t}.wpe`, config.n_positions, C);
  bare(`${t}.drop`, 'Dropout');
  bare(`${t}.h`, 'ModuleList');
  const act = activationClass(config.activation_function);
  for (let i = 0; i < config.n_layer; i++) {
    const h = `${t}.h.${i}`;
    bare(h, 'GPT2Block');
    layerNorm(`${h}.ln_1`, C);
    bare(`${h}.attn`, 'GPT2Attention');
    conv1d(`${h}.attn.c_attn`, C, 3 * C);
    conv1d(`${h}.attn.c_proj`, C, C);
    bare(`${h}.attn.attn_dropout`, 'Dropout');
    bare(`${h}.attn.resid_dropout`, 'Dropout');
    layerNorm(`${h}.ln_2`, C);
    bare(`${h}.mlp`, 'GPT2MLP');
    conv1d(`${h}.mlp.c_fc`, C, I);
    conv1d(`${h}.mlp.c_proj`, I, C);
    bare(`${h}.mlp.act`, act);
    bare(`${h}.mlp.dropout`, 'Dropout');
  }
  layerNorm(`${t}.ln_f`, C);
  if (task === 'seq-cls') {
    // nn.Linear(n_embd, num_labels, bias=False)
    out.push({ name: 'score', type: 'Linear', in_features: C, out_features: num_labels, params: C * num_labels, weight_keys: ['score.weight'], is_head: true });
  } else {
    // nn.Linear(n_embd, vocab_size, bias=False), weight tied to wte: counted once, at wte
    out.push({ name: 'lm_head', type: 'Linear', in_features: C, out_features: config.vocab_size, params: 0, weight_keys: [], is_head: true, tied_to: `${t}.wte` });
  }
  return out;
}

/** Sum of the parameters owned by the modules: the model total, tied weights once. */
export function totalParams(modules: ModuleInfo[]): number {
  let n = 0;
  for (const m of modules) n += m.params;
  return n;
}

