/**
 * Everything a command needs before it can run the model: the backend, the model folder (local or from
 * the Hub cache), the tokenizer, the LoRA targets with their PEFT line, the data, and the tfjs model.
 * Training (`openTrainingSession`) and the one-shot commands (`openModel`: eval, generate) share it.
 */
import * as path from 'node:path';
import { modelAsGiven, type RunConfig } from '../config/run_config';
import { baseModelRefFor } from '../lora/base_model_ref';
import { type BackendInfo, type BackendName, initBackend } from '../backend';
import { resolveModelDir } from '../io/hub_model';
import { loadTokenizer, type TextTokenizer } from '../tokenizer/tokenizer';
import { choosePadTokenId } from '../tokenizer/padding';
import type { LoadedModel, LoraModel, ModelConfig, ModelFamily } from '../models/family';
import { readWeightLayouts } from '../io/hf_folder';
import { readRunnableModelConfig } from '../models/registry';
import { resolveTargets } from '../lora/targets';
import { countParams } from '../lora/peft_line';
import { adapterConfigJson, checkAdapterFitsModel, loadAdapter } from '../lora/adapter_io';
import { rankTable } from '../lora/patterns';
import { prepareData, type PreparedData } from '../data/prepare';
import type { AdapterConfigJson, AdapterWeights } from '../lora/types';
import type { LoraTarget, ModuleInfo } from '../protocol';
import { taskFromPeft, type Task } from '../task';
import { LoraStudioError } from '../errors';

export interface TrainingSession {
  backend: BackendInfo;
  modelDir: string;
  loaded: LoadedModel;
  tokenizer: TextTokenizer;
  modules: ModuleInfo[];
  targets: LoraTarget[];
  counts: { trainable_params: number; all_params: number; line: string };
  data: PreparedData;
  family: ModelFamily;
  model: LoraModel;
  pad_token_id: number;
  adapterConfig: AdapterConfigJson;
  /** the adapter as PEFT saves it into `dir` (default output_dir), with the seq-cls label names in its metadata */
  exportAdapter(dir?: string): Promise<AdapterWeights>;
}

/** The pad id (tokenizer/padding.ts); a folder with neither pad nor eos token is a named error. */
export function padTokenId(l: LoadedModel, tokenizer: TextTokenizer, warnings: string[]): number {
  const id = choosePadTokenId(l.config, tokenizer, warnings);
  if (id === undefined) throw new LoraStudioError('is not set, and neither is eos_token_id (nor pad_token/eos_token in tokenizer_config.json): batches need a pad token', path.join(l.dir, 'config.json'), 'pad_token_id');
  return id;
}

/**
 * Each weight's stored dtype by canonical key, from the weight files' headers only, for the heap check on wasm;
 * undefined elsewhere, or when the headers cannot be read (then loading the weights names the problem).
 */
function storedDtypes(dir: string, family: ModelFamily, config: ModelConfig, backend: string): ((key: string) => string | undefined) | undefined {
  if (backend !== 'wasm' || !family.assertFitsBackend) return undefined;
  let layouts: ReturnType<typeof readWeightLayouts>;
  try {
    layouts = readWeightLayouts(dir);
  } catch {
    return undefined;
  }
  const dtypes = new Map<string, string>();
  for (const [key, file] of layouts.where) {
    const canonical = family.canonicalKey ? family.canonicalKey(key, config) : key;
    const e = layouts.files.get(file)?.entries.get(key);
    if (canonical && e) dtypes.set(canonical, e.dtype);
  }
  return (key) => dtypes.get(key);
}

export async function openTrainingSession(cfg: RunConfig, opts: { configFile?: string; backend?: string; onWarning: (m: string) => void; onInfo?: (m: string) => void }): Promise<TrainingSession> {
  const backend = await initBackend((opts.backend ?? cfg.training.backend ?? undefined) as BackendName | undefined);
  const configFile = opts.configFile;
  const modelDir = await resolveModelDir(cfg.model, 'model', { configFile, log: opts.onInfo });
  // A family that cannot train yet refuses before any other work.
  const { family, config: peek } = readRunnableModelConfig(modelDir);
  family.assertFitsBackend?.(peek, backend.backend, path.join(modelDir, 'config.json'), storedDtypes(modelDir, family, peek, backend.backend));
  const tokenizer = loadTokenizer(modelDir);
  const seed = cfg.training.seed;

  // Data first: for seq-cls with string labels, the number of classes comes from the data.
  const data = await prepareData(cfg.data, cfg.task, tokenizer, {
    seed, configFile, eos_token_id: tokenizer.eos_token_id ?? family.eosTokenId(peek), num_labels: cfg.task === 'seq-cls' ? cfg.num_labels ?? undefined : undefined, log: opts.onInfo, modelDir,
  });
  for (const f of data.report.files) {
    if (f.bad.length) opts.onWarning(`${f.file}: skipped ${f.bad.length} of ${f.rows} rows: ${f.bad.slice(0, 10).map((b) => `line ${b.line}: ${b.reason}`).join('; ')}${f.bad.length > 10 ? '; …' : ''}`);
    if (f.truncated) opts.onWarning(`${f.file}: truncated ${f.truncated} examples to max_length ${cfg.data.max_length}`);
  }
  data.report.warnings.forEach(opts.onWarning);
  if (data.eval.length === 0 && cfg.training.eval_strategy !== 'no') {
    throw new LoraStudioError('eval_strategy needs evaluation data: set data.eval or data.eval_split', configFile, 'training.eval_strategy');
  }

  const num_labels = cfg.task === 'seq-cls' ? cfg.num_labels ?? Object.keys(data.id2label ?? {}).length : 0;
  const loaded = family.load(modelDir, { task: cfg.task, num_labels: cfg.task === 'seq-cls' ? num_labels : undefined, seed });
  loaded.warnings.forEach(opts.onWarning);
  const modules = family.namedModules(loaded.config, cfg.task, loaded.num_labels);
  const resolved = resolveTargets(modules, cfg.lora, cfg.task, {
    explicitModulesToSave: cfg.lora.modules_to_save !== null, file: configFile, defaults: { model_type: loaded.config.model_type, target_modules: family.defaultTargetModules },
  });
  resolved.warnings.forEach(opts.onWarning);
  const counts = countParams(modules, resolved.targets, resolved.modules_to_save, cfg.lora.bias);
  const padWarnings: string[] = [];
  const pad_token_id = padTokenId(loaded, tokenizer, padWarnings);
  padWarnings.forEach(opts.onWarning);
  const model = family.createModel({
    config: loaded.config, task: cfg.task, num_labels: loaded.num_labels, weights: loaded.weights, targets: resolved.targets,
    modules_to_save: resolved.modules_to_save, bias: cfg.lora.bias, lora_dropout: cfg.lora.lora_dropout,
    init_lora_weights: cfg.lora.init_lora_weights, seed, pad_token_id,
  });
  // Free the host copy of the base weights: the model holds them now.
  loaded.weights.clear();
  const adapterConfig = adapterConfigJson(
    { ...cfg.lora, fan_in_fan_out: resolved.fan_in_fan_out, modules_to_save: resolved.modules_to_save.length ? resolved.modules_to_save : null },
    // null: PEFT resolves its default for the model_type and saves that list (_prepare_adapter_config)
    cfg.task, cfg.model, cfg.lora.target_modules ?? [...family.defaultTargetModules]);
  const metadata: Record<string, string> = {};
  if (cfg.task === 'seq-cls' && data.id2label && data.label2id) {
    metadata.id2label = JSON.stringify(data.id2label);
    metadata.label2id = JSON.stringify(data.label2id);
  }
  return {
    backend, modelDir, loaded, tokenizer, modules, targets: resolved.targets, counts, data, family, model, pad_token_id, adapterConfig,
    exportAdapter: async (dir = cfg.training.output_dir) => ({
      ...(await model.exportAdapter({ ...adapterConfig, base_model_name_or_path: baseModelRefFor(modelAsGiven(cfg), cfg.model, dir) })), metadata,
    }),
  };
}

export interface OpenedModel {
  backend: BackendInfo;
  modelDir: string;
  loaded: LoadedModel;
  tokenizer: TextTokenizer;
  family: ModelFamily;
  model: LoraModel;
  adapter?: AdapterWeights;
  pad_token_id: number;
}

/**
 * A model for eval/generate: the base folder, plus an adapter whose targets come from its own files
 * (the module names of its lora_A tensors, with r and scaling from its adapter_config.json).
 */
export async function openModel(opts: { modelDir: string; adapterDir?: string; task?: Task; backend?: string; seed?: number; command?: 'generate' | 'classify' }): Promise<OpenedModel> {
  const backend = await initBackend(opts.backend as BackendName | undefined);
  const modelDir = await resolveModelDir(opts.modelDir, 'model-dir');
  const adapter = opts.adapterDir ? loadAdapter(opts.adapterDir) : undefined;
  const adapterTask = taskFromPeft(adapter?.config.task_type);
  if (opts.task && adapterTask && opts.task !== adapterTask) {
    // generate and classify have no --task: point to the command that fits the adapter
    const other = opts.command === 'generate' ? 'classify' : 'generate';
    const message = opts.command
      ? `this is a ${adapterTask} adapter; \`${opts.command}\` needs a ${opts.task} one: use \`lora-studio ${other}\` instead`
      : `the adapter was trained for ${adapterTask} but --task is ${opts.task}`;
    throw new LoraStudioError(message, path.join(opts.adapterDir!, 'adapter_config.json'), 'task_type');
  }
  const task = opts.task ?? adapterTask;
  const scoreRows = adapter?.extra.get('score.weight')?.shape[0];
  const { family, config: peek } = readRunnableModelConfig(modelDir);
  family.assertFitsBackend?.(peek, backend.backend, path.join(modelDir, 'config.json'), storedDtypes(modelDir, family, peek, backend.backend));
  const loaded = family.load(modelDir, { task, num_labels: scoreRows, seed: opts.seed ?? 42 });
  const tokenizer = loadTokenizer(modelDir);
  let targets: LoraTarget[] = [];
  if (adapter) {
    checkAdapterFitsModel(adapter, path.join(opts.adapterDir!, 'adapter_model.safetensors'), family.adapterFacts(loaded.config), loaded.weights);
    const modules = new Map(family.namedModules(loaded.config, loaded.task, loaded.num_labels).map((m) => [m.name, m]));
    const ranks = rankTable(adapter.config, [...adapter.lora.keys()], { file: path.join(opts.adapterDir!, 'adapter_config.json') }).byName;
    targets = [...adapter.lora.entries()].map(([name, { A }]) => {
      const m = modules.get(name)!;
      const { lora_alpha, scaling } = ranks.get(name)!;
      return { name, type: m.type as 'Conv1D' | 'Linear', in_features: m.in_features!, out_features: m.out_features!, r: A.shape[0], lora_alpha, scaling };
    });
  }
  // one-shot commands: the pad id never changes a result (padding is masked), so the eos fallback goes unsaid
  const pad_token_id = padTokenId(loaded, tokenizer, []);
  const model = family.createModel({
    config: loaded.config, task: loaded.task, num_labels: loaded.num_labels, weights: loaded.weights, targets,
    // modules_to_save: the modules whose weights the adapter carries whole (biases ride on `bias`)
    modules_to_save: adapter ? [...adapter.extra.keys()].filter((k) => k.endsWith('.weight')).map((k) => k.slice(0, -'.weight'.length)) : [],
    bias: adapter?.config.bias ?? 'none', lora_dropout: 0, init_lora_weights: true, seed: opts.seed ?? 42, adapter, pad_token_id,
  });
  loaded.weights.clear();
  return { backend, modelDir, loaded, tokenizer, family, model, adapter, pad_token_id };
}
