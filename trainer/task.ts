/**
 * What the trainer trains for, at the top of the trainer's vocabulary: every layer (data, LoRA, the model
 * families, training, the commands) speaks of these tasks and imports them from here.
 */
export type Task = 'causal-lm' | 'seq-cls';

/** PEFT's task_type for each task. */
export const PEFT_TASK_TYPE: Record<Task, 'CAUSAL_LM' | 'SEQ_CLS'> = { 'causal-lm': 'CAUSAL_LM', 'seq-cls': 'SEQ_CLS' };

/** The task of a PEFT task_type, or undefined for one we do not train (or none). */
export function taskFromPeft(task_type: unknown): Task | undefined {
  return task_type === 'SEQ_CLS' ? 'seq-cls' : task_type === 'CAUSAL_LM' ? 'causal-lm' : undefined;
}

/** seq-cls classes (transformers builds an id2label entry per class). */
export const MAX_LABELS = 100_000;
