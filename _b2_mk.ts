import pngjs from "pngjs";
const [w, h, out] = [Number(Deno.args[0]), Number(Deno.args[1]), Deno.args[2]];
const png = new pngjs.PNG({ width: w, height: h });
png.data.fill(255);
// a few dark pixels so it is not blank
for (let i = 0; i < Math.min(w * h, 1000); i += 7) { png.data[i * 4] = 0; png.data[i * 4 + 1] = 0; png.data[i * 4 + 2] = 0; }
Deno.writeFileSync(out, pngjs.PNG.sync.write(png));
