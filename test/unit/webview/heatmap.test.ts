import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OTHER_ROW, energyAt, heatmapLayout, mixColor, parseColor, splitModuleName } from '../../../webview/heatmap';

describe('heatmap layout from module names', () => {
  it('puts GPT-2 modules in layer rows and module-path columns, in block order', () => {
    const names = [
      'transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_attn',
      'transformer.h.10.attn.c_attn', 'transformer.h.2.mlp.c_proj', 'transformer.h.1.attn.c_proj',
    ];
    const l = heatmapLayout(names);
    assert.deepEqual(l.rows, ['0', '1', '2', '10']);
    assert.deepEqual(l.cols, ['attn.c_attn', 'mlp.c_proj', 'attn.c_proj']);
    const at = (n: string) => l.cells.find((c) => c.name === n)!;
    assert.deepEqual(at('transformer.h.10.attn.c_attn'), { name: 'transformer.h.10.attn.c_attn', row: 3, col: 0 });
    assert.deepEqual(at('transformer.h.2.mlp.c_proj'), { name: 'transformer.h.2.mlp.c_proj', row: 2, col: 1 });
    assert.deepEqual(at('transformer.h.1.attn.c_proj'), { name: 'transformer.h.1.attn.c_proj', row: 1, col: 2 });
    assert.equal(l.cells.length, names.length);
  });

  it('reads `.layers.<i>.` too, and puts modules outside the blocks in a row of their own', () => {
    const l = heatmapLayout(['model.layers.3.self_attn.q_proj', 'score', 'model.layers.0.self_attn.q_proj', 'lm_head']);
    assert.deepEqual(l.rows, ['0', '3', OTHER_ROW]);
    assert.deepEqual(l.cols, ['self_attn.q_proj', 'score', 'lm_head']);
    assert.deepEqual(l.cells.find((c) => c.name === 'score'), { name: 'score', row: 2, col: 1 });
    assert.deepEqual(l.cells.find((c) => c.name === 'lm_head'), { name: 'lm_head', row: 2, col: 2 });
  });

  it('needs a whole `h.<i>.` segment', () => {
    assert.deepEqual(splitModuleName('transformer.h.7.mlp.c_fc'), { layer: 7, sub: 'mlp.c_fc' });
    assert.deepEqual(splitModuleName('h.2.attn.c_attn'), { layer: 2, sub: 'attn.c_attn' });
    assert.equal(splitModuleName('transformer.wh.7.mlp'), undefined);
    assert.equal(splitModuleName('transformer.h.x.mlp'), undefined);
    assert.deepEqual(heatmapLayout([]), { rows: [], cols: [], cells: [] });
  });
});

describe('spectrum energy', () => {
  it('is the share of Σσ² in the top k directions', () => {
    assert.equal(energyAt([3, 4], 1), 9 / 25);
    assert.equal(energyAt([3, 4, 0], 2), 1);
    assert.equal(energyAt([2, 1, 1, 1], 4), 1);
    assert.equal(energyAt([0, 0], 1), 0);
  });
});

describe('colours', () => {
  it('parses the forms VS Code theme variables take', () => {
    assert.deepEqual(parseColor('#3794ff'), [0x37, 0x94, 0xff, 1]);
    assert.deepEqual(parseColor('#fff'), [255, 255, 255, 1]);
    assert.deepEqual(parseColor('#00000080'), [0, 0, 0, 128 / 255]);
    assert.deepEqual(parseColor('rgba(10, 20, 30, 0.5)'), [10, 20, 30, 0.5]);
    assert.deepEqual(parseColor('rgb(10 20 30 / 50%)'), [10, 20, 30, 0.5]);
    assert.equal(parseColor('var(--x)'), undefined);
  });

  it('blends from the low to the high end', () => {
    assert.equal(mixColor([0, 0, 0, 1], [200, 100, 50, 1], 0.5), 'rgba(100, 50, 25, 1)');
    assert.equal(mixColor([0, 0, 0, 1], [200, 100, 50, 1], 2), 'rgba(200, 100, 50, 1)');
    assert.equal(mixColor([0, 0, 0, 1], [200, 100, 50, 1], NaN), 'rgba(0, 0, 0, 1)');
  });
});
