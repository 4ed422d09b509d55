/**
 * The host's checks for the Analyze and Compare panels (protocol: webview/protocol.ts, imported for its types
 * only): every message from either webview passes isPanelWebviewMessage before it is used, and the CLI's
 * `analyze --json` object is checked field by field (toAnalysisData) before it goes to the webview, so a CLI of
 * another version shows a message instead of a broken panel. No vscode import.
 */
import type { AnalyzeResult } from '../../trainer/protocol';
import type { AnalysisData, AnalysisModule, PanelWebviewMessage } from '../../webview/protocol';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFiniteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNums = (v: unknown): v is number[] => Array.isArray(v) && v.every(isFiniteNum);

/** the longest name a chart image may be saved under */
const MAX_NAME = 200;

export function isPanelWebviewMessage(v: unknown): v is PanelWebviewMessage {
  if (!isObj(v)) return false;
  switch (v.type) {
    case 'ready':
      return true;
    case 'saveImage':
      return typeof v.name === 'string' && v.name.length > 0 && v.name.length <= MAX_NAME && typeof v.dataUrl === 'string' && v.dataUrl.startsWith('data:image/');
    case 'rendered':
      return isObj(v.charts) && Object.keys(v.charts).length <= 64 && Object.values(v.charts).every(isFiniteNum);
    default:
      return false;
  }
}

function toModule(v: unknown, i: number): AnalysisModule {
  const where = `modules[${i}]`;
  if (!isObj(v) || typeof v.name !== 'string') throw new Error(`${where}: not a module`);
  if (!Number.isInteger(v.r)) throw new Error(`${where}.r: not an integer`);
  if (!isNums(v.singular_values)) throw new Error(`${where}.singular_values: not a list of numbers`);
  if (!isFiniteNum(v.delta_fro)) throw new Error(`${where}.delta_fro: not a number`);
  if (!isFiniteNum(v.stable_rank)) throw new Error(`${where}.stable_rank: not a number`);
  const m: AnalysisModule = { name: v.name, r: v.r as number, singular_values: v.singular_values, delta_fro: v.delta_fro, stable_rank: v.stable_rank };
  if (v.amplification !== undefined) {
    const a = v.amplification;
    if (!isObj(a) || !isFiniteNum(a.factor) || !isFiniteNum(a.projected_fro) || !isFiniteNum(a.random_fro)) throw new Error(`${where}.amplification: needs factor, projected_fro, random_fro`);
    m.amplification = { factor: a.factor, projected_fro: a.projected_fro, random_fro: a.random_fro };
  }
  return m;
}

/** The webview's AnalysisData from the CLI's JSON (AnalyzeResult); throws naming the bad field. */
export function toAnalysisData(json: object): AnalysisData {
  const r = json as Partial<Record<keyof AnalyzeResult, unknown>>;
  if (typeof r.adapter !== 'string') throw new Error('adapter: missing in the analyze result');
  if (!Array.isArray(r.modules)) throw new Error('modules: missing in the analyze result');
  const similarity = (Array.isArray(r.similarity) ? r.similarity : []).map((s: unknown, i) => {
    if (!isObj(s) || typeof s.name !== 'string' || !Array.isArray(s.phi) || !s.phi.every(isNums)) throw new Error(`similarity[${i}]: needs name and phi (a matrix of numbers)`);
    return { name: s.name, phi: s.phi as number[][] };
  });
  return {
    adapter: r.adapter,
    base: typeof r.base === 'string' ? r.base : null,
    compare: typeof r.compare === 'string' ? r.compare : null,
    modules: r.modules.map(toModule),
    similarity,
    warnings: Array.isArray(r.warnings) ? r.warnings.filter((w): w is string => typeof w === 'string') : [],
  };
}
