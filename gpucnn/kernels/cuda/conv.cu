// Convolution's data movement, channels-last: im2col unfolds every window of x into a row of
// columns, and col2im folds column gradients back onto the input. The matrix products are in
// gemm.cu. Shape names: N batch, H x W input, C channels, K window, S stride, P padding,
// OH x OW output.
#include "common.cuh"

// cols: (N*OH*OW, C*K*K), rows (n, oh, ow), columns (c, kh, kw) as in a (O, C, K, K) weight;
// zero where a window reaches into the padding. x is read through element strides (sn, sh, sw,
// sc), so an NCHW input needs no transposing copy. Blocks of (blockDim.x, blockDim.y): threadIdx.y
// picks a row and the x threads write along it, so consecutive threads write consecutive columns.
extern "C" __global__ void im2col(const float* x, long long sn, long long sh, long long sw,
                                  long long sc, float* cols, int N, int H, int W, int C, int OH,
                                  int OW, int K, int S, int P) {
  const int row = blockIdx.x * blockDim.y + threadIdx.y;
  if (row >= N * OH * OW) return;
  // 32-bit index arithmetic throughout: 64-bit division is many times slower.
  const int ow = row % OW, oh = row / OW % OH, n = row / OW / OH;
  const int kk = K * K, width = C * kk;
  const float* src = x + n * sn;
  float* dst = cols + (long long)row * width;
  for (int j = threadIdx.x; j < width; j += blockDim.x) {
    const int c = j / kk, kh = j % kk / K, kw = j % K;
    const int h = oh * S - P + kh, w = ow * S - P + kw;
    dst[j] = (h >= 0 && h < H && w >= 0 && w < W) ? src[h * sh + w * sw + c * sc] : 0.f;
  }
}

// dx: (N, H, W, C), each element gathering the column gradients of every window that covers it
// (a gather rather than a scatter-add: no atomics, so the sum's order is fixed), then times
// act'(aux) (see masked).
extern "C" __global__ void col2im(const float* dcols, float* dx, int N, int H, int W, int C,
                                  int OH, int OW, int K, int S, int P, const float* aux,
                                  int aux_act) {
  FOR_EACH((long long)N * H * W * C)
  const Nhwc p = nhwc_at(i, H, W, C);
  const int n = p.n, h = p.h, w = p.w, c = p.c;
  float acc = 0.f;
  for (int kh = 0; kh < K; ++kh) {
    const int hs = h + P - kh;  // oh * S for the window whose row kh lands on h
    const int oh = S == 1 ? hs : hs / S;
    if (hs < 0 || oh * S != hs || oh >= OH) continue;
    for (int kw = 0; kw < K; ++kw) {
      const int ws = w + P - kw;
      const int ow = S == 1 ? ws : ws / S;
      if (ws < 0 || ow * S != ws || ow >= OW) continue;
      const long long row = ((long long)n * OH + oh) * OW + ow;
      acc += dcols[(row * C + c) * K * K + kh * K + kw];
    }
  }
  dx[i] = masked(acc, aux, aux_act, i);
}
