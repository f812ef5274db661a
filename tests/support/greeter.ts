/**
 * The source of a small function module that greets, used to deploy and
 * reload versions that answer differently.
 * @module
 */

/** A module whose handler answers `"<greeting> <name>"`, after `delayMs`. */
export function greeterModule(greeting: string): string {
  return `import { defineFunction, z } from "isolane";

export default defineFunction({
  description: "Greets, in version ${greeting}",
  input: z.object({ name: z.string(), delayMs: z.number().default(0) }),
  output: z.object({ message: z.string() }),
  async handler({ name, delayMs }) {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    return { message: "${greeting} " + name };
  },
});
`;
}
