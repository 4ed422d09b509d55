/**
 * `lora-studio`: the trainer as a command-line tool. Every command takes --json for one machine-readable
 * JSON object on stdout (train --json streams JSON Lines). Errors go to stderr with a non-zero exit code
 * and name the file and the field.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { LoraStudioError, wasReported } from './errors';
import { BACKEND_NAMES } from './backend_names';
import { CLI, type Output } from './commands/output';
import { version } from '../package.json';

/*
 * Each command's code is imported when that command runs (esbuild turns `await import()` of a bundled module into
 * a lazily initialised one): `--version`, `--help` and usage errors load none of it, and `merge` (header reads and
 * host-side arithmetic) never runs the code of training, evaluation or the TensorFlow.js backends.
 */
const commands = () => import('./commands/run');
const mergeCommand = () => import('./commands/run_merge');
const analyzeCommand = () => import('./commands/analyze');



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

/** A mistake on the command line itself (unknown option, missing value): exit code 2, with a pointer to --help. */
class UsageError extends LoraStudioError {
  constructor(message: string, field: string | undefined, readonly hint: string) {
    super(message, CLI, field);
  }
}

/**
 * The last line of defence: every error ends here. Ours (LoraStudioError) print `file: field: message`; anything
 * else is a bug, printed as one line (the stack only with LORA_STUDIO_DEBUG=1).
 */
function fail(e: unknown, json: boolean): never {
  const err = e instanceof LoraStudioError ? e : null;
  const raw = e instanceof Error ? e.message : String(e);
  const message = err ? err.message : `internal error: ${raw}`;
  process.stderr.write(`lora-studio: error: ${err ? err.describe() : message}\n`);
  if (e instanceof UsageError) process.stderr.write(`${e.hint}\n`);
  if (!err) {
    process.stderr.write('This is a bug in lora-studio; please report it, with the command you ran' +
      (process.env.LORA_STUDIO_DEBUG === '1' ? '.\n' : ' (LORA_STUDIO_DEBUG=1 prints the stack trace).\n'));
    if (process.env.LORA_STUDIO_DEBUG === '1' && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  }
  // A training run has already streamed its `error` event.
  if (json && !wasReported(e)) process.stdout.write(JSON.stringify({ event: 'error', message, file: err?.file, field: err?.field }) + '\n');
  process.exit(e instanceof UsageError ? 2 : 1);
}

/** Commander's error (message and code) as ours: the option or argument it is about, and what is wrong. */
function usageError(err: CommanderError, cmd: Command): UsageError {
  const name = cmd.parent ? `lora-studio ${cmd.name()}` : 'lora-studio';
  const hint = `see ${name} --help`;
  const [first, ...rest] = err.message.replace(/^error: /, '').split('\n');
  const suggestion = rest.join(' ').trim().replace(/^\(Did you mean (.*?)\??\)$/, 'did you mean $1?');
  const more = suggestion ? `; ${suggestion}` : '';
  let m: RegExpExecArray | null;
  switch (err.code) {
    case 'commander.unknownOption':
      m = /'([^']+)'/.exec(first);
      return new UsageError(`unknown option for ${name}${more}`, m?.[1], hint);
    case 'commander.unknownCommand':
      m = /'([^']+)'/.exec(first);
      return new UsageError(`unknown command ${JSON.stringify(m?.[1] ?? '')}${more}`, 'command', hint);
    case 'commander.missingMandatoryOptionValue':
      m = /'((--[\w-]+)[^']*)'/.exec(first);
      return new UsageError(`is required (${m?.[1] ?? first})`, m?.[2], hint);
    case 'commander.optionMissingArgument':
      m = /'((--[\w-]+)[^']*)'/.exec(first);
      return new UsageError(`needs a value (${m?.[1] ?? first})`, m?.[2], hint);
    case 'commander.invalidArgument': {
      // "option '--backend <name>' argument 'gpu' is invalid. Allowed choices are …" / "… is invalid. <our reason>"
      m = /^option '(--[\w-]+)[^']*' argument '(.*)' is invalid\. ?(.*)$/s.exec(first);
      if (m) return new UsageError(`${JSON.stringify(m[2])} is invalid: ${m[3] ? m[3][0].toLowerCase() + m[3].slice(1) : 'see --help'}`, m[1], hint);
      return new UsageError(first, undefined, hint);
    }
    case 'commander.missingArgument':
      m = /'([^']+)'/.exec(first);
      return new UsageError(`missing (usage: ${name} ${cmd.usage()})`, m?.[1], hint);
    case 'commander.excessArguments':
      return new UsageError(first, 'arguments', hint);
    default:
      return new UsageError(first, /'(--[\w-]+)/.exec(first)?.[1], hint);
  }
}

const backendOption = () => new Option('--backend <name>', 'force a TensorFlow.js backend').choices(BACKEND_NAMES);
/** Number parsers for flags: a bad value is a usage error that names the flag (commander adds it). */
const numberArg = (what: string, ok: (n: number) => boolean, integer: boolean) => (v: string) => {
  const n = v.trim() === '' ? NaN : Number(v);
  if (!(integer ? Number.isInteger(n) : Number.isFinite(n)) || !ok(n)) throw new InvalidArgumentError(`expected ${what}`);
  return n;
};
const posInt = numberArg('a whole number ≥ 1', (n) => n >= 1, true);
const seedInt = numberArg('a whole number from 0 to 4294967295', (n) => n >= 0 && n <= 0xffffffff, true);
const num = numberArg('a number', () => true, false);
const nonNeg = numberArg('a number ≥ 0', (n) => n >= 0, false);
const nonNegInt = numberArg('a whole number ≥ 0', (n) => n >= 0, true);
const probability = numberArg('a number greater than 0 and at most 1', (n) => n > 0 && n <= 1, false);

export function buildProgram(): Command {
  const program = new Command('lora-studio')
    .description('Fine-tune GPT-2-class models with LoRA; reads and writes Hugging Face and PEFT files.')
    .version(version, '-V, --version', 'print the version')
    // Commander prints nothing of its own for errors: fail() prints one line (and a pointer to --help).
    .configureOutput({ outputError: () => {} });
  // Usage errors (a missing option, a bad choice) go through fail() too, so --json callers get an error event.
  const usageErrors = (cmd: Command) => {
    cmd.exitOverride((err) => {
      if (err.exitCode === 0) process.exit(0); // --help, --version
      throw usageError(err, cmd);
    });
  };

  program.command('inspect')
    .description('print the module tree (as named_modules() names it), mark the LoRA targets, and print the PEFT line; reads config.json only')
    .argument('[model-dir]', 'Hugging Face model folder (default: the run config\'s model)')
    .addOption(new Option('--task <task>').choices(['causal-lm', 'seq-cls']))
    .option('--num-labels <n>', 'seq-cls head size', posInt)
    .option('--config <run.json>', 'take model, task, num_labels and lora from a run config')
    .option('--target-modules <spec>', 'comma-separated names (exact or .suffix), a regex (full match), a JSON list, or all-linear')
    .option('--r <n>', 'LoRA rank', posInt)
    .option('--lora-alpha <n>', 'LoRA alpha', num)
    .option('--modules-to-save <a,b>', 'modules trained in full and saved with the adapter')
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, async () => (await commands()).runInspect(modelDir, o, output(!!o.json))));

  program.command('eval')
    .description('evaluate a model (optionally with an adapter) on JSONL data: loss/perplexity or accuracy/weighted F1')
    .argument('<model-dir>')
    .requiredOption('--data <file>', 'JSONL with a "text" field (and "label" for seq-cls)')
    .option('--adapter <dir>', 'PEFT adapter folder')
    .addOption(new Option('--task <task>').choices(['causal-lm', 'seq-cls']))
    .option('--max-length <n>', 'truncate each example to this many tokens', posInt)
    .option('--batch-size <n>', 'examples per batch', posInt, 8)
    .addOption(backendOption())
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, async () => (await commands()).runEval(modelDir, o, output(!!o.json))));

  program.command('merge')
    .description('merge an adapter into the base weights and write a new Hugging Face folder')
    .argument('<model-dir>')
    .requiredOption('--adapter <dir>', 'PEFT adapter folder')
    .requiredOption('--out <dir>', 'new folder to create (never the base folder)')
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, async () => (await mergeCommand()).runMerge(modelDir, o, output(!!o.json))));

  program.command('analyze')
    .description("what an adapter learned (the LoRA paper's section 7): each module's singular values of ΔW, energy and stable rank; with --base, how much ΔW amplifies W's directions; with --compare, the subspace similarity of two adapters")
    .argument('<adapter-dir>', 'PEFT adapter folder')
    .option('--base <model-dir>', 'the base model, for the amplification factor')
    .option('--compare <adapter-dir>', 'a second adapter of the same model (any rank), for φ')
    .option('--json', 'one JSON object on stdout')
    .action((adapterDir, o) => guard(o.json, async () => (await analyzeCommand()).runAnalyze(adapterDir, o, output(!!o.json))));

  program.command('generate')
    .description('generate text from a prompt (causal-lm)')
    .argument('<model-dir>')
    .option('--adapter <dir>', 'PEFT adapter folder')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--max-new-tokens <n>', 'tokens to generate (≥ 1)', posInt, 20)
    .option('--temperature <t>', '≥ 0; 0 for greedy decoding (then --top-k and --top-p do nothing)', nonNeg, 0)
    .option('--top-k <k>', 'sample only from the k most probable tokens; 0: off', nonNegInt, 0)
    .option('--top-p <p>', 'sample only from the most probable tokens whose probabilities sum to ≥ p (0 < p ≤ 1); 1: off', probability, 1)
    .option('--seed <n>', 'sampling seed', seedInt, 42)
    .addOption(backendOption())
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, async () => (await commands()).runGenerate(modelDir, o, output(!!o.json))));

  program.command('classify')
    .description('classify a text with a sequence-classification model or adapter (seq-cls)')
    .argument('<model-dir>')
    .option('--adapter <dir>', 'PEFT adapter folder')
    .requiredOption('--text <text>', 'the text to classify')
    .addOption(backendOption())
    .option('--json', 'one JSON object on stdout')
    .action((modelDir, o) => guard(o.json, async () => (await commands()).runClassify(modelDir, o, output(!!o.json))));

  program.command('train')
    .description('train a LoRA adapter from a run config (lora-run.json)')
    .requiredOption('--config <file>', 'run config (PEFT LoraConfig + transformers TrainingArguments names)')
    .option('--resume [checkpoint]', 'resume from a checkpoint folder, or the latest one in output_dir')
    .addOption(backendOption())
    .option('--json', 'JSON Lines events on stdout')
    .action((o) => guard(o.json, async () => (await commands()).runTrain(o, output(!!o.json))));

  program.command('demo')
    .description('the built-in default: train a sentiment classifier on a locally built GPT-2-architecture model, then merge it')
    .option('--model <dir-or-hub-id>', 'run the same job on a real GPT-2 instead of the built-in tiny model')
    .option('--out <dir>', 'working folder', '.lora-studio/demo')
    .option('--epochs <n>', 'epochs', posInt)
    .addOption(backendOption())
    .option('--json', 'JSON Lines events on stdout')
    .action((o) => guard(o.json, async () => (await commands()).runDemo(o, output(!!o.json))));

  usageErrors(program);
  for (const c of program.commands) usageErrors(c);
  return program;
}

async function guard(json: boolean | undefined, fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch (e) {
    fail(e, !!json);
  }
}

export function main(argv: string[]): Promise<unknown> {
  const json = argv.includes('--json');
  // Nothing escapes as a stack trace, not even an error thrown outside a command's promise.
  process.on('uncaughtException', (e) => fail(e, json));
  process.on('unhandledRejection', (e) => fail(e, json));
  const program = buildProgram();
  // A bare `lora-studio` prints the help on stdout and exits 0, as `lora-studio --help` does (like gh, docker, kubectl).
  if (argv.length <= 2) {
    program.outputHelp();
    return Promise.resolve();
  }
  return program.parseAsync(argv).catch((e) => fail(e, json));
}

if (require.main === module) void main(process.argv);
