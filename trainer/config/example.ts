/**
 * A complete example run config (GPT-2 sentiment classification with LoRA), as a user would write it:
 * a starting point for new run files, and the reference example of the tests and docs.
 */
import type { RunConfigInput } from './schema';

export const EXAMPLE_RUN_CONFIG = {
  model: 'models/gpt2-tiny',
  task: 'seq-cls',
  num_labels: 2,
  data: { train: 'data/train.jsonl', eval: 'data/eval.jsonl', text_column: 'text', label_column: 'label', max_length: 256, eval_split: 0.1 },
  lora: { r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: 'transformer\\.h\\..*\\.attn\\.c_.*', modules_to_save: ['score'] },
  training: {
    output_dir: 'runs/sst2', num_train_epochs: 10, max_steps: -1, per_device_train_batch_size: 32, per_device_eval_batch_size: 32,
    learning_rate: 1e-3, weight_decay: 1e-5, warmup_ratio: 0, lr_scheduler_type: 'linear', gradient_accumulation_steps: 1,
    max_grad_norm: 1.0, eval_strategy: 'epoch', eval_steps: null, save_strategy: 'epoch', save_steps: null,
    save_total_limit: null, logging_steps: 10, load_best_model_at_end: true, metric_for_best_model: 'accuracy',
    seed: 42, resume_from_checkpoint: null,
  },
} satisfies RunConfigInput;
