/**
 * The one layout rule of a 16-bit matrix (ops/half.ts), apart so that the weight lists that apply it
 * (models/llama/weights.ts) do not load TensorFlow.js with it.
 */

/** Whether a [rows, cols] matrix can be held in 16 bits: its rows must be whole int32s (cols even). */
export function halfShapeOk(shape: readonly number[]): boolean {
  return shape.length === 2 && shape[1] % 2 === 0 && shape[1] > 0 && shape[0] > 0;
}
