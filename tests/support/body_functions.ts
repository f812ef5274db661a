/**
 * Function sources for the tests that send hostile bodies (`cut_body_test.ts`, `hostile_body_test.ts`,
 * `whole_limits_test.ts`): a JSON echo and a KServe v2 identity model, each with extra options lines (limits, `auth`,
 * `cors`) put into its `defineFunction`.
 * @module
 */

/** A function that echoes `{"message"}`, with `options` (lines of `defineFunction`'s object, each ending in a comma). */
export function echoFunction(options = ""): string {
  return `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Echo",
  input: z.object({ message: z.string() }),
  output: z.object({ message: z.string() }),
  ${options}
  handler: (input) => input,
});
`;
}

/** A KServe v2 model, identity on FP32 `[-1, 2]`, with `options` as {@link echoFunction} takes them. */
export function identityModel(options = ""): string {
  return `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Identity on FP32",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 2] }],
  },
  ${options}
  handler: ({ x }) => ({ y: x }),
});
`;
}
