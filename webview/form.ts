/**
 * The config form: one control per field of fields.ts, bound to the run config the host sends. Which fields
 * are editable, and what each accepts (text or a choice of options), comes with that config from the host;
 * the others are shown read-only, and the form is rebuilt when that list changes. A change the field accepts
 * goes to the host as `editConfig`; a value it does not accept is marked invalid and not sent.
 * Text the user typed but the host has not confirmed yet is kept as a draft (saved with setState), so a reload
 * or a config refresh does not wipe it.
 */
import type { VscodeFormHelper } from '@vscode-elements/elements/dist/vscode-form-helper/vscode-form-helper.js';
import type { VscodeSingleSelect } from '@vscode-elements/elements/dist/vscode-single-select/vscode-single-select.js';
import type { VscodeTextfield } from '@vscode-elements/elements/dist/vscode-textfield/vscode-textfield.js';
import type { EditableField } from './protocol';
import { buildForm, formatFieldValue, getPath, parseFieldInput, type FormField } from './fields';

type Control = VscodeTextfield | VscodeSingleSelect;

interface Bound {
  spec: FormField;
  control: Control;
  helper: VscodeFormHelper;
}

export class ConfigForm {
  private readonly fields = new Map<string, Bound>();
  private config: Record<string, unknown> | null = null;
  private drafts: Record<string, string> = {};
  private editable = true;
  /** the editable fields the form was built for, as JSON (rebuilt when the host sends a different list) */
  private builtFor: string | undefined;
  private readonly fileLine: HTMLElement;
  private readonly sectionsHost: HTMLElement;

  constructor(
    parent: HTMLElement,
    private readonly send: (path: string, value: unknown) => void,
    private readonly changed: () => void,
  ) {
    this.fileLine = document.createElement('p');
    this.fileLine.className = 'config-file';
    this.sectionsHost = document.createElement('div');
    parent.append(this.fileLine, this.sectionsHost);
    this.build([]);
    this.render();
  }

  /** (Re)creates the controls for the fields the host lets the form edit; drafts of fields no longer editable go. */
  private build(editable: readonly EditableField[]): void {
    const key = JSON.stringify(editable);
    if (key === this.builtFor) return;
    this.builtFor = key;
    this.fields.clear();
    const sections = buildForm(editable).map((section) => {
      const fs = document.createElement('fieldset');
      const legend = document.createElement('legend');
      legend.textContent = section.title;
      fs.append(legend);
      for (const spec of section.fields) fs.append(this.field(spec));
      return fs;
    });
    this.sectionsHost.replaceChildren(...sections);
    for (const path of Object.keys(this.drafts)) if (!this.fields.get(path)?.spec.kind) delete this.drafts[path];
  }

  private field(spec: FormField): HTMLElement {
    const id = `field-${spec.path.replace(/\./g, '-')}`;
    const group = document.createElement('vscode-form-group');
    group.variant = 'vertical';
    const label = document.createElement('vscode-label');
    label.htmlFor = id;
    label.textContent = spec.label;
    const kind = spec.kind;
    let control: Control;
    if (kind?.type === 'enum') {
      const select = document.createElement('vscode-single-select');
      for (const o of kind.options) {
        const opt = document.createElement('vscode-option');
        opt.value = o;
        opt.textContent = o;
        select.append(opt);
      }
      control = select;
    } else {
      const text = document.createElement('vscode-textfield');
      text.placeholder = spec.defaultText ? `default: ${spec.defaultText}` : '';
      text.readonly = !kind;
      text.addEventListener('input', () => {
        this.drafts[spec.path] = text.value;
        this.changed();
      });
      control = text;
    }
    control.id = id;
    control.addEventListener('change', () => this.commit(spec.path));
    const helper = document.createElement('vscode-form-helper');
    helper.textContent = spec.hint ?? '';
    group.append(label, control, helper);
    this.fields.set(spec.path, { spec, control, helper });
    return group;
  }

  private commit(path: string): void {
    const f = this.fields.get(path);
    if (!f || !f.spec.kind || !this.editable) return;
    const text = f.control.value;
    const parsed = parseFieldInput(f.spec.kind, text);
    this.setInvalid(f, parsed.ok ? null : parsed.error);
    if (!parsed.ok) {
      this.drafts[path] = text;
      this.changed();
      return;
    }
    // unchanged: nothing to send
    if (formatFieldValue(getPath(this.config, path)) === formatFieldValue(parsed.value) && getPath(this.config, path) !== undefined) {
      delete this.drafts[path];
      this.changed();
      return;
    }
    this.drafts[path] = text;
    this.changed();
    this.send(path, parsed.value);
  }

  private setInvalid(f: Bound, error: string | null): void {
    if ('invalid' in f.control) f.control.invalid = error !== null;
    f.helper.textContent = error ?? f.spec.hint ?? '';
    f.helper.classList.toggle('error', error !== null);
  }

  /** A new run config from the host, with the fields the form may edit; drafts it now confirms are dropped. */
  setConfig(config: Record<string, unknown> | null, configFile: string | null, editable: readonly EditableField[]): void {
    this.build(editable);
    this.config = config;
    this.fileLine.textContent = configFile ? `Run config: ${configFile}` : 'No run config. Use "LoRA: New Run Config" to create lora-run.json.';
    for (const [path, draft] of Object.entries(this.drafts)) {
      const parsed = parseFieldInput(this.fields.get(path)?.spec.kind, draft);
      if (parsed.ok && formatFieldValue(getPath(config, path)) === formatFieldValue(parsed.value)) delete this.drafts[path];
    }
    this.render();
  }

  /** Editing is off while a run is going, or when there is no run config. */
  setEditable(editable: boolean): void {
    this.editable = editable;
    this.render();
  }

  getDrafts(): Record<string, string> {
    return { ...this.drafts };
  }

  restore(config: Record<string, unknown> | null, configFile: string | null, editable: readonly EditableField[], drafts: Record<string, string>): void {
    this.drafts = { ...drafts };
    this.builtFor = undefined; // rebuild, so drafts of fields the restored list does not make editable go
    this.setConfig(config, configFile, editable);
  }

  private render(): void {
    const disabled = !this.editable || this.config === null;
    for (const [path, f] of this.fields) {
      const value = getPath(this.config, path);
      const focused = document.activeElement === f.control;
      if (!focused) {
        const text = path in this.drafts ? this.drafts[path] : formatFieldValue(value);
        if (f.control.tagName.toLowerCase() === 'vscode-single-select') f.control.value = text || f.spec.defaultText;
        else f.control.value = text;
        const parsed = path in this.drafts && f.spec.kind ? parseFieldInput(f.spec.kind, this.drafts[path]) : null;
        this.setInvalid(f, parsed && !parsed.ok ? parsed.error : null);
      }
      f.control.disabled = f.spec.kind ? disabled : false;
    }
  }
}
