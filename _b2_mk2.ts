import pngjs from "pngjs";
import { renderText } from "./tests/support/render_text.ts";
const [w, h, font, out] = [Number(Deno.args[0]), Number(Deno.args[1]), Number(Deno.args[2]), Deno.args[3]];
const png = new pngjs.PNG({ width: w, height: h });
png.data.fill(255);
if (font > 0) {
  const text = await renderText([Deno.args[4] ?? "INVOICE 4711"], { width: Math.min(w, 8000), fontSize: font });
  const rows = Math.min(text.height, h);
  for (let y = 0; y < rows; y++) png.data.set(text.data.subarray(y * text.width * 4, (y + 1) * text.width * 4), (y * w) * 4);
}
Deno.writeFileSync(out, pngjs.PNG.sync.write(png));
