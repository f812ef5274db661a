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

// OpenCV's bicubic weight (INTER_CUBIC, A = -0.75) for a tap at distance d.
__device__ __forceinline__ float cubic_weight(float d) {
  const float a = -0.75f;
  d = fabsf(d);
  if (d <= 1.0f) return ((a + 2.0f) * d - (a + 3.0f)) * d * d + 1.0f;
  if (d < 2.0f) return ((a * d - 5.0f * a) * d + 8.0f * a) * d - 4.0f * a;
  return 0.0f;
}

// Perspective crops of an RGBA image into one NCHW float32 batch in BGR order, one crop a row of the batch, each
// channel as v * scale[c] - shift[c]: output pixel (x, y) of row z reads the image at M_z (x, y, 1) (a 3×3 row-major
// matrix per row in `transforms`, mapping output pixels to image pixels, as OpenCV's warpPerspective with
// WARP_INVERSE_MAP), bicubic with A = -0.75, edges replicated, each channel rounded to 8 bits as OpenCV's 8-bit warp
// gives it. Columns at or past widths[z] are zero (the row's padding), and so is a row whose width is 0.
extern "C" __global__ void warp_normalize_bgr(
    const unsigned char* __restrict__ rgba, int src_w, int src_h,
    const float* __restrict__ transforms, const int* __restrict__ widths,
    float* __restrict__ out, int out_w, int out_h,
    float scale_b, float scale_g, float scale_r,
    float shift_b, float shift_g, float shift_r) {
  int x = blockIdx.x * blockDim.x + threadIdx.x;
  int y = blockIdx.y * blockDim.y + threadIdx.y;
  int z = blockIdx.z;
  if (x >= out_w || y >= out_h) return;
  size_t plane = (size_t)out_w * out_h;
  size_t at = (size_t)z * 3 * plane + (size_t)y * out_w + x;
  if (x >= widths[z]) {
    out[at] = 0.0f;
    out[at + plane] = 0.0f;
    out[at + 2 * plane] = 0.0f;
    return;
  }
  const float* m = transforms + (size_t)z * 9;
  float w = m[6] * x + m[7] * y + m[8];
  w = w != 0.0f ? 1.0f / w : 0.0f;
  float u = (m[0] * x + m[1] * y + m[2]) * w;
  float v = (m[3] * x + m[4] * y + m[5]) * w;
  int u0 = (int)floorf(u);
  int v0 = (int)floorf(v);
  float fu = u - u0;
  float fv = v - v0;
  float wu[4], wv[4];
  int cols[4], rows[4];
  for (int k = 0; k < 4; k++) {
    wu[k] = cubic_weight(fu - (k - 1));
    wv[k] = cubic_weight(fv - (k - 1));
    cols[k] = min(max(u0 + k - 1, 0), src_w - 1);
    rows[k] = min(max(v0 + k - 1, 0), src_h - 1);
  }
  float scale[3] = {scale_b, scale_g, scale_r};
  float shift[3] = {shift_b, shift_g, shift_r};
  for (int c = 0; c < 3; c++) {
    int src = 2 - c;  // BGR from RGBA
    float sum = 0.0f;
    for (int j = 0; j < 4; j++) {
      const unsigned char* row = rgba + (size_t)rows[j] * src_w * 4;
      float line = 0.0f;
      for (int k = 0; k < 4; k++) line += wu[k] * row[cols[k] * 4 + src];
      sum += wv[j] * line;
    }
    float value = fminf(fmaxf(rintf(sum), 0.0f), 255.0f);
    out[at + c * plane] = value * scale[c] - shift[c];
  }
}
