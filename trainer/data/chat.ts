/**
 * Chat data: a `messages` column (`[{"role", "content"}, …]`, TRL's conversational format) is rendered with the
 * model's `chat_template` through @huggingface/jinja, as transformers' `apply_chat_template` renders it, and only
 * the assistant tokens are trained on, as with TRL's `assistant_only_loss`.
 *
 * Which tokens are an assistant message's. TRL reads them from the template's {% generation %} markers, which
 * most released templates (SmolLM2's, Qwen2.5's, Llama 3's) lack. We render the conversation prefix by prefix
 * instead: for the assistant message i, the tokens of messages[0..i] rendered without a generation prompt, beyond
 * the tokens of messages[0..i) rendered with `add_generation_prompt=true`, are that message's. So the role header
 * (`<|im_start|>assistant\n`, `<|start_header_id|>assistant<|end_header_id|>\n\n`), which the generation prompt
 * holds, is never trained on; the content and the end-of-turn token that closes it (`<|im_end|>`, `<|eot_id|>`)
 * are, so that the model learns to stop. Whitespace the template writes after that special token (ChatML's "\n"
 * between turns) belongs to no message and is left out, as TRL's masks leave it out; when the turn ends without a
 * special token, its trailing newline is the end of turn and is kept. Each prefix must tokenize to a prefix of the
 * whole conversation's tokens; a template (or tokenizer) that breaks that is an error, never a guessed mask.
 *
 * The text is tokenized without the tokenizer's post-processor tokens, as apply_chat_template(tokenize=True)
 * does (add_special_tokens=False): templates write their own BOS (Llama 3's `{{ bos_token }}`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { LoraStudioError, preview } from '../errors';
import { isPlainObject, readJsonFile } from '../io/json';
import type { TextTokenizer } from '../tokenizer/tokenizer';

/** The column that makes a row a conversation (TRL's conversational format). */
export const MESSAGES_COLUMN = 'messages';
/** Special tokens a template may use, from tokenizer_config.json (transformers passes its special_tokens_map). */
const TOKEN_VARIABLES = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;

export interface ChatMessage {
  role: string;
  content: string;
  /** other keys (name, tool_calls, …) go to the template as they are */
  [key: string]: unknown;
}

export interface ChatTemplate {
  /** where the template came from (tokenizer_config.json or chat_template.jinja), for messages */
  file: string;
  /** the rendered text; a template that throws raises a LoraStudioError naming `where` */
  render(messages: ChatMessage[], addGenerationPrompt: boolean, where: RowRef): string;
}

/** The data file and row a conversation came from, for errors. */
export interface RowRef {
  file: string;
  line: number;
}

export interface EncodedChat {
  input_ids: number[];
  /** 1 where the token belongs to an assistant message (TRL's `assistant_masks`), else 0 */
  assistant_masks: number[];
}

/**
 * The chat template of a model folder: tokenizer_config.json's `chat_template` (a string, or transformers' list of
 * named templates, of which "default" is used), else chat_template.jinja beside it (newer transformers save it
 * there). None is an error naming tokenizer_config.json and chat_template.
 */
export function loadChatTemplate(modelDir: string): ChatTemplate {
  const cfgFile = path.join(modelDir, 'tokenizer_config.json');
  const jinjaFile = path.join(modelDir, 'chat_template.jinja');
  const cfg = fs.existsSync(cfgFile) ? readJsonFile(cfgFile) : {};
  if (!isPlainObject(cfg)) throw new LoraStudioError(`must be a JSON object, got ${preview(cfg)}`, cfgFile);
  let source = templateSource(cfg.chat_template, cfgFile);
  let file = cfgFile;
  if (source === undefined && fs.existsSync(jinjaFile)) {
    source = fs.readFileSync(jinjaFile, 'utf8');
    file = jinjaFile;
  }
  if (source === undefined) {
    throw new LoraStudioError(
      `${fs.existsSync(cfgFile) ? 'has no' : 'is missing, so there is no'} chat template, and the data has a "${MESSAGES_COLUMN}" column; use a model with a chat template (an instruct model) or give the data as "text"`,
      cfgFile,
      'chat_template',
    );
  }
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new LoraStudioError(`the template does not parse: ${jinjaMessage(e)}`, file, 'chat_template');
  }
  const tokens: Record<string, string> = {};
  for (const k of TOKEN_VARIABLES) {
    const t = cfg[k];
    if (typeof t === 'string') tokens[k] = t;
    else if (isPlainObject(t) && typeof t.content === 'string') tokens[k] = t.content;
  }
  return {
    file,
    render(messages, addGenerationPrompt, where) {
      try {
        return template.render({ messages, add_generation_prompt: addGenerationPrompt, ...tokens });
      } catch (e) {
        throw new LoraStudioError(`line ${where.line}: the chat template (${file}) failed on this conversation: ${jinjaMessage(e)}`, where.file, MESSAGES_COLUMN);
      }
    },
  };
}

function templateSource(value: unknown, file: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => isPlainObject(t) && t.name === 'default');
    if (isPlainObject(named) && typeof named.template === 'string') return named.template;
    throw new LoraStudioError('is a list of named templates without a "default" one', file, 'chat_template');
  }
  throw new LoraStudioError(`must be a string (a Jinja template), got ${preview(value)}`, file, 'chat_template');
}

/** jinja's message, one bounded line, without its stack. */
function jinjaMessage(e: unknown): string {
  const line = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

/**
 * A row's `messages` value checked: a list of objects whose `role` and `content` are strings. Anything else is an
 * error naming the data file, the row and the field (`messages[2].content`).
 */
export function checkMessages(value: unknown, where: RowRef): ChatMessage[] {
  const fail = (field: string, what: string): never => {
    throw new LoraStudioError(`line ${where.line}: ${what}; each message is {"role": string, "content": string}`, where.file, field);
  };
  if (!Array.isArray(value)) fail(MESSAGES_COLUMN, `must be a list of messages, got ${preview(value)}`);
  (value as unknown[]).forEach((m, i) => {
    const field = `${MESSAGES_COLUMN}[${i}]`;
    if (!isPlainObject(m)) fail(field, `must be an object, got ${preview(m)}`);
    const msg = m as Record<string, unknown>;
    for (const k of ['role', 'content']) {
      if (typeof msg[k] !== 'string') fail(`${field}.${k}`, `must be a string, got ${preview(msg[k])}`);
    }
  });
  return value as ChatMessage[];
}

/**
 * The tokens of a conversation and its assistant mask, or the reason the row is skipped (no assistant message,
 * which is to chat data what an empty text is to plain text).
 */
export function encodeChat(messages: ChatMessage[], template: ChatTemplate, tokenizer: TextTokenizer, where: RowRef): EncodedChat | { reason: string } {
  if (!messages.some((m) => m.role === 'assistant')) return { reason: `column "${MESSAGES_COLUMN}" has no assistant message` };
  const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  const input_ids = encode(template.render(messages, false, where));
  const assistant_masks = new Array<number>(input_ids.length).fill(0);
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = encode(template.render(messages.slice(0, i), true, where));
    const through = i === messages.length - 1 ? input_ids : encode(template.render(messages.slice(0, i + 1), false, where));
    if (!isPrefix(before, through) || !isPrefix(through, input_ids)) {
      throw new LoraStudioError(
        `line ${where.line}: with the chat template (${template.file}), the conversation up to ${MESSAGES_COLUMN}[${i}] does not tokenize to a prefix of the whole conversation, so its assistant tokens cannot be told apart; the template rewrites earlier turns (as templates that drop past reasoning do), or its text splits tokens at a turn boundary`,
        where.file,
        `${MESSAGES_COLUMN}[${i}]`,
      );
    }
    const end = endOfTurn(through, before.length, tokenizer);
    assistant_masks.fill(1, before.length, end);
  });
  return { input_ids, assistant_masks };
}

/**
 * The end of an assistant span [start, ids.length): whitespace-only tokens after its last special token (ChatML's
 * "\n" after `<|im_end|>`) are cut off. Special tokens are the ones that decode to nothing (decode skips them).
 */
function endOfTurn(ids: number[], start: number, tokenizer: TextTokenizer): number {
  let end = ids.length;
  while (end > start && /^\s+$/.test(tokenizer.decode([ids[end - 1]]))) end--;
  if (end < ids.length && end > start && tokenizer.decode([ids[end - 1]]) === '') return end;
  return ids.length;
}

function isPrefix(a: number[], b: number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface ChatItem {
  line: number;
  ids: number[];
  mask: number[];
}

/**
 * A file's conversations: rows whose `messages` is missing or has no assistant message are bad rows (with their
 * reasons, as empty texts are); a malformed `messages`, a template that throws and a template that breaks the
 * prefix rule are errors.
 */
export function encodeChatRows(
  rows: Array<{ line: number; record: Record<string, unknown> }>,
  file: string,
  template: ChatTemplate,
  tokenizer: TextTokenizer,
): { items: ChatItem[]; bad: Array<{ line: number; reason: string }> } {
  const items: ChatItem[] = [];
  const bad: Array<{ line: number; reason: string }> = [];
  for (const { line, record } of rows) {
    if (!Object.hasOwn(record, MESSAGES_COLUMN)) {
      bad.push({ line, reason: `missing column "${MESSAGES_COLUMN}"` });
      continue;
    }
    const where = { file, line };
    const encoded = encodeChat(checkMessages(record[MESSAGES_COLUMN], where), template, tokenizer, where);
    if ('reason' in encoded) bad.push({ line, reason: encoded.reason });
    else items.push({ line, ids: encoded.input_ids, mask: encoded.assistant_masks });
  }
  return { items, bad };
}
