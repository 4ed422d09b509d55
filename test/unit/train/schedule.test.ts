/** Learning-rate schedules vs hand-computed values (transformers' lambdas, LambdaLR convention). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { learningRateAt, warmupSteps, type LrSchedulerType } from '../../../trainer/train/schedule';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-15 + 1e-12 * Math.abs(b), `${a} != ${b}`);
const at = (type: LrSchedulerType, step: number, warmup: number, total = 10, lr = 1e-3) =>
  learningRateAt(step, { type, learning_rate: lr, num_training_steps: total, num_warmup_steps: warmup });

describe('warmupSteps', () => {
  it('takes warmup_steps when > 0, else ceil(ratio · total)', () => {
    assert.equal(warmupSteps(0.1, 0, 95), 10); // ceil(9.5)
    assert.equal(warmupSteps(0.1, 0, 100), 10);
    assert.equal(warmupSteps(0.5, 3, 100), 3);
    assert.equal(warmupSteps(0, 0, 100), 0);
  });
});

describe('learningRateAt', () => {
  it('linear without warmup: lr·(total−k)/total, starting at the full rate', () => {
    close(at('linear', 0, 0), 1e-3);
    close(at('linear', 1, 0), 0.9e-3);
    close(at('linear', 9, 0), 0.1e-3);
    close(at('linear', 10, 0), 0);
    close(at('linear', 12, 0), 0);
  });
  it('linear with warmup by steps: 0 at step 0, then decays from the peak', () => {
    close(at('linear', 0, 4), 0);
    close(at('linear', 1, 4), 0.25e-3);
    close(at('linear', 3, 4), 0.75e-3);
    close(at('linear', 4, 4), 1e-3);
    close(at('linear', 7, 4), 1e-3 * 3 / 6);
    close(at('linear', 10, 4), 0);
  });
  it('linear with warmup by ratio', () => {
    const w = warmupSteps(0.25, 0, 10); // ceil(2.5) = 3
    assert.equal(w, 3);
    close(at('linear', 2, w), 1e-3 * 2 / 3);
    close(at('linear', 5, w), 1e-3 * 5 / 7);
  });
  it('cosine (half cycle)', () => {
    close(at('cosine', 0, 0), 1e-3);
    close(at('cosine', 5, 0), 0.5e-3); // cos(π/2) = 0
    close(at('cosine', 10, 0), 0);
    close(at('cosine', 1, 2), 0.5e-3); // warmup
    // step 4 of 10 with 2 warmup: progress 2/8 → 0.5(1+cos(π/4))
    close(at('cosine', 4, 2), 1e-3 * 0.5 * (1 + Math.SQRT1_2));
    close(at('cosine', 12, 2), 0.5e-3 * (1 + Math.cos(Math.PI * 10 / 8))); // past the end: cos rises again, as transformers
  });
  it('constant ignores warmup; constant_with_warmup ramps then holds', () => {
    close(at('constant', 0, 5), 1e-3);
    close(at('constant', 99, 5), 1e-3);
    close(at('constant_with_warmup', 0, 5), 0);
    close(at('constant_with_warmup', 2, 5), 0.4e-3);
    close(at('constant_with_warmup', 5, 5), 1e-3);
    close(at('constant_with_warmup', 50, 5), 1e-3);
  });
});
