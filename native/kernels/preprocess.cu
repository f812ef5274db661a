// Image pre-processing for isolane: a region of an RGBA image, resized with
// bilinear sampling (half-pixel centres, like OpenCV's INTER_LINEAR) into an
// NCHW float32 tensor in BGR order, each channel as v * scale[c] - shift[c].
// Matches functions/ocr/image.ts resizeNormalize, which is the CPU reference.
extern "C" __global__ void resize_normalize_bgr(
    const unsigned char* __restrict__ rgba, int src_w, int src_h,
    float rx, float ry, float rw, float rh,
    float* __restrict__ out, int out_w, int out_h,
    float scale_b, float scale_g, float scale_r,
    float shift_b, float shift_g, float shift_r) {
  int x = blockIdx.x * blockDim.x + threadIdx.x;
  int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= out_w || y >= out_h) return;
  float sx = rw / out_w;
  float sy = rh / out_h;
  float fx = fminf(fmaxf(rx + (x + 0.5f) * sx - 0.5f, 0.0f), (float)(src_w - 1));
  float fy = fminf(fmaxf(ry + (y + 0.5f) * sy - 0.5f, 0.0f), (float)(src_h - 1));
  int x0 = (int)floorf(fx);
  int y0 = (int)floorf(fy);
  int x1 = min(x0 + 1, src_w - 1);
  int y1 = min(y0 + 1, src_h - 1);
  float wx = fx - x0;
  float wy = fy - y0;
  const unsigned char* p00 = rgba + ((size_t)y0 * src_w + x0) * 4;
  const unsigned char* p01 = rgba + ((size_t)y0 * src_w + x1) * 4;
  const unsigned char* p10 = rgba + ((size_t)y1 * src_w + x0) * 4;
  const unsigned char* p11 = rgba + ((size_t)y1 * src_w + x1) * 4;
  size_t plane = (size_t)out_w * out_h;
  size_t at = (size_t)y * out_w + x;
  float scale[3] = {scale_b, scale_g, scale_r};
  float shift[3] = {shift_b, shift_g, shift_r};
  for (int c = 0; c < 3; c++) {
    int src = 2 - c;  // BGR from RGBA
    float top = p00[src] * (1.0f - wx) + p01[src] * wx;
    float bottom = p10[src] * (1.0f - wx) + p11[src] * wx;
    out[c * plane + at] = (top * (1.0f - wy) + bottom * wy) * scale[c] - shift[c];
  }
}
