/**
 * The mlp model computed in plain JS from the generator's weights: the
 * reference every ONNX Runtime answer (CPU or GPU) is compared with.
 * @module
 */
import { mlpShape, mlpWeights } from "../../scripts/make_mlp_model.ts";

/** y = relu(x W1 + b1) W2 + b2 for each row. */
export function mlpReference(rows: number[][]): number[][] {
  const { inputs, hidden, outputs } = mlpShape;
  const w = mlpWeights();
  return rows.map((x) => {
    const h = Array.from({ length: hidden }, (_, j) => {
      let sum = w.b1[j];
      for (let i = 0; i < inputs; i++) sum += x[i] * w.w1[i * hidden + j];
      return Math.max(0, sum);
    });
    return Array.from({ length: outputs }, (_, k) => {
      let sum = w.b2[k];
      for (let j = 0; j < hidden; j++) sum += h[j] * w.w2[j * outputs + k];
      return sum;
    });
  });
}

/** Rows of 4 inputs that differ with `seed`, so that mixed-up answers show. */
export function mlpInput(seed: number, rows = 3): number[][] {
  return Array.from(
    { length: rows },
    (_, r) => Array.from({ length: 4 }, (_, c) => Math.sin(seed * 7.1 + r * 4 + c) * 3),
  );
}

/** Asserts two matrices agree within `tolerance` (absolute plus relative). */
export function assertClose(actual: number[][], expected: number[][], tolerance: number, label = ""): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: ${actual.length} rows, expected ${expected.length}`);
  }
  actual.forEach((row, r) =>
    row.forEach((v, c) => {
      const e = expected[r][c];
      if (!(Math.abs(v - e) <= tolerance * (1 + Math.abs(e)))) {
        throw new Error(`${label}: y[${r}][${c}] = ${v}, expected ${e} within ${tolerance}`);
      }
    })
  );
}
