/**
 * `lora-studio`: the trainer as a command-line tool. Every command takes --json for one machine-readable
 * JSON object on stdout (train --json streams JSON Lines). Errors go to stderr with a non-zero exit code
 * and name the file and the field.
 */
import { Command, Option } from 'commander';
import { LoraStudioError, wasReported } from './errors';
import { BACKEND_NAMES } from './backend';
import { runInspect, runEval, runMerge, runGenerate, runClassify, runTrain, runDemo, type Output } from './commands/run';


function output(json: boolean): Output {
  return {
    json,
    info: (line: string) => {
      if (!json) process.stdout.write(line + '\n');
    },
    warn: (line: string) => process.stderr.write(`warning: ${line}\n`),
    result: (obj: unknown) => {
      if (json) process.stdout.write(JSON.stringify(obj) + '\n');
    },
  };
}

function fail(e: unknown, json: boolean): never {
  const err = e instanceof LoraStudioError ? e : null;
  const message = err ? err.describe() : e instanceof Error ? e.stack ?? e.message : String(e);
  process.stderr.write(`lora-studio: error: ${message}\n`);
  // A training run has already streamed its `error` event.
  if (json && !wasReported(e)) process.stdout.write(JSON.stringify({ event: 'error', message: err ? err.message : String((e as Error)?.message ?? e), file: err?.file, field: err?.field }) + '\n');
  process.exit(e instanceof UsageError ? 2 : 1);
}

const backendOption = () => new Option('--backend <name>', 'force a TensorFlow.js backend').choices(BACKEND_NAMES);
const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new LoraStudioError(`expected an integer, got ${JSON.stringify(v)}`);
  return n;
};
const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new LoraStudioError(`expected a number, got ${JSON.stringify(v)}`);
  return n;
};

export function buildProgram(): Command {
  const program = new Command('lora-studio')
    .description('Fine-tune GPT-2-class models with LoRA; reads and writes Hugging Face and PEFT files.')
    .showHelpAfterError();
  // Usage errors (a missing option, a bad choice) go through fail() too, so --json callers get an error event.
  const usageErrors = (cmd: Command) => {
    cmd.exitOverride((err) => {
      if (err.exitCode === 0) process.exit(0); // --help, --version
      const option = /'(--[a-z-]+)/.exec(err.message)?.[1] ?? /argument '([^']+)'/.exec(err.message)?.[1];
      throw new UsageError(err.message.replace(/^error: /, ''), undefined, option);
    });
  };

  program.command('inspect')
    .description('print the module tree (as named_modules() names it), mark the LoRA targets, and print the PEFT line; reads config.json only')
    .argument('[model-dir]', 'Hugging Face model folder (default: the run config\'s model)')
    .addOption(new Option('--task <task>').choices(['causal-lm', 'seq-cls']))
    .option('--num-labels <n>', 'seq-cls head size', int)
    .option('--config <run.json>', 'take model, task, num_labels and lora from a run config')
    .option('--target-modules <spec>', 'comma-separated names (exact or .suffix), a regex (full match), a JSON list, or all-linear')
    .option('--r <n>', 'LoRA rank', int)
    .option('--lora-alpha <n>', 'LoRA alpha', num)
    .option('--modules-to-save <a,b>', 'modules trained in full and saved with the adapter')
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, () => runInspect(modelDir, o, output(!!o.json))));

  program.command('eval')
    .description('evaluate a model (optionally with an adapter) on JSONL data: loss/perplexity or accuracy/weighted F1')
    .argument('<model-dir>')
    .requiredOption('--data <file>', 'JSONL with a "text" field (and "label" for seq-cls)')
    .option('--adapter <dir>', 'PEFT adapter folder')
    .addOption(new Option('--task <task>').choices(['causal-lm', 'seq-cls']))
    .option('--max-length <n>', 'truncate each example to this many tokens', int)
    .option('--batch-size <n>', 'examples per batch', int, 8)
    .addOption(backendOption())
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, () => runEval(modelDir, o, output(!!o.json))));

  program.command('merge')
    .description('merge an adapter into the base weights and write a new Hugging Face folder')
    .argument('<model-dir>')
    .requiredOption('--adapter <dir>', 'PEFT adapter folder')
    .requiredOption('--out <dir>', 'new folder to create (never the base folder)')
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, () => runMerge(modelDir, o, output(!!o.json))));

  program.command('generate')
    .description('generate text from a prompt (causal-lm)')
    .argument('<model-dir>')
    .option('--adapter <dir>', 'PEFT adapter folder')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--max-new-tokens <n>', 'tokens to generate', int, 20)
    .option('--temperature <t>', '0 for greedy decoding', num, 0)
    .option('--seed <n>', 'sampling seed', int, 42)
    .addOption(backendOption())
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, () => runGenerate(modelDir, o, output(!!o.json))));

  program.command('classify')
    .description('classify a text with a sequence-classification model or adapter (seq-cls)')
    .argument('<model-dir>')
    .option('--adapter <dir>', 'PEFT adapter folder')
    .requiredOption('--text <text>', 'the text to classify')
    .addOption(backendOption())
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, () => runClassify(modelDir, o, output(!!o.json))));

  program.command('train')
    .description('train a LoRA adapter from a run config (lora-run.json)')
    .requiredOption('--config <file>', 'run config (PEFT LoraConfig + transformers TrainingArguments names)')
    .option('--resume [checkpoint]', 'resume from a checkpoint folder, or the latest one in output_dir')
    .addOption(backendOption())
    .option('--json', 'JSON Lines events on stdout')
    .action((o) => guard(o.json, () => runTrain(o, output(!!o.json))));

  program.command('demo')
    .description('the built-in default: train a sentiment classifier on a locally built GPT-2-architecture model, then merge it')
    .option('--model <dir-or-hub-id>', 'run the same job on a real GPT-2 instead of the built-in tiny model')
    .option('--out <dir>', 'working folder', '.lora-studio/demo')
    .option('--epochs <n>', 'epochs', int)
    .addOption(backendOption())
    .option('--json', 'JSON Lines events on stdout')
    .action((o) => guard(o.json, () => runDemo(o, output(!!o.json))));

  usageErrors(program);
  for (const c of program.commands) usageErrors(c);
  return program;
}

class UsageError extends LoraStudioError {}

async function guard(json: boolean | undefined, fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch (e) {
    fail(e, !!json);
  }
}

export function main(argv: string[]): Promise<unknown> {
  return buildProgram().parseAsync(argv).catch((e) => fail(e, argv.includes('--json')));
}

if (require.main === module) void main(process.argv);
