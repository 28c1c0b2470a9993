// Convolutions, channels-last. Written-out columns: im2col unfolds every window of x into a row
// of columns, and col2im folds column gradients back onto the input (their products are
// gemm.cu's). Gathered columns: the three products as implicit GEMMs on tile.cuh's tile loop.
// Shape names: N batch, H x W input, C channels, K window, S stride, P padding, OH x OW output.
#include "tile.cuh"

// The im2col columns of x: (N, H, W, C), read through element strides (sn, sh, sw, sc), so an
// NCHW input needs no transposing copy. Element (row, col) of the (N*OH*OW, C*K*K) matrix: rows
// (n, oh, ow), columns (c, kh, kw) as in a (O, C, K, K) weight; zero where a window reaches into
// the padding. im2col writes them out; the implicit GEMMs below gather them as a tile is filled.
// 32-bit index arithmetic: 64-bit division is many times slower.
struct Columns {
  const float* x;
  long long sn, sh, sw, sc;
  int H, W, OH, OW, K, S, P;
  __device__ __forceinline__ float at(int row, int col) const {
    const int ow = row % OW, oh = row / OW % OH, n = row / OW / OH;
    const int c = col / (K * K), kh = col % (K * K) / K, kw = col % K;
    const int h = oh * S - P + kh, w = ow * S - P + kw;
    return (h >= 0 && h < H && w >= 0 && w < W) ? x[n * sn + h * sh + w * sw + c * sc] : 0.f;
  }
  // Neighbouring rows are neighbouring output pixels, which read neighbouring inputs.
  __device__ __forceinline__ bool rows_fast() const { return true; }
};

// cols: (N*OH*OW, C*K*K), the columns written out. Blocks of (blockDim.x, blockDim.y):
// threadIdx.y picks a row and the x threads write along it, so consecutive threads write
// consecutive columns (the row's decomposition into (n, oh, ow) is hoisted out of the loop).
extern "C" __global__ void im2col(const float* x, long long sn, long long sh, long long sw,
                                  long long sc, float* cols, int N, int H, int W, int C, int OH,
                                  int OW, int K, int S, int P) {
  const int row = blockIdx.x * blockDim.y + threadIdx.y;
  if (row >= N * OH * OW) return;
  const Columns src{x, sn, sh, sw, sc, H, W, OH, OW, K, S, P};
  const int width = C * K * K;
  float* dst = cols + (long long)row * width;
  for (int j = threadIdx.x; j < width; j += blockDim.x) dst[j] = src.at(row, j);
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

// ----- convolutions as implicit GEMMs: the columns gathered as each tile is filled ----------
// The columns' gradient dcols = dy W, never written out, seen from the input: element (row, col)
// with row (n, h, w) of the input and col (kh, kw, o) is dy[n, oh, ow, o] for the window (oh, ow)
// whose tap (kh, kw) lands on (h, w), zero if none does. Times TapWeights, the product is the
// input gradient col2im(dy W) (a transposed convolution), summed in a fixed order.
struct WindowGrads {
  const float* dy;  // (N*OH*OW, O), through strides
  long long s0, s1;
  int H, W, OH, OW, O, K, S, P;
  __device__ __forceinline__ float at(int row, int col) const {
    const int w = row % W, h = row / W % H, n = row / W / H;
    const int o = col % O, kw = col / O % K, kh = col / O / K;
    const int hs = h + P - kh, ws = w + P - kw;  // oh * S and ow * S
    if (hs < 0 || ws < 0 || hs % S || ws % S) return 0.f;
    const int oh = hs / S, ow = ws / S;
    if (oh >= OH || ow >= OW) return 0.f;
    return dy[((long long)(n * OH + oh) * OW + ow) * s0 + o * s1];
  }
  __device__ __forceinline__ bool rows_fast() const { return s1 != 1; }
};

// The weights W: (O, C*K*K) (through strides) as a (K*K*O, C) matrix: element ((kh, kw, o), c).
struct TapWeights {
  const float* w;
  long long s0, s1;
  int O, K;
  __device__ __forceinline__ float at(int tap, int c) const {
    const int o = tap % O, kw = tap / O % K, kh = tap / O / K;
    return w[o * s0 + ((c * K + kh) * K + kw) * s1];
  }
  __device__ __forceinline__ bool rows_fast() const { return false; }
};

#define COLUMNS                                                                                \
  const float *x, long long sn, long long sh, long long sw, long long sc, int H, int W, int OH, \
      int OW, int KW, int S, int P
#define COLUMNS_OF_X Columns{x, sn, sh, sw, sc, H, W, OH, OW, KW, S, P}
#define WINDOW_GRADS                                                                     \
  const float *dy, long long dy0, long long dy1, int H, int W, int OH, int OW, int O, int KW, \
      int S, int P
#define TAP_WEIGHTS const float *wt, long long wt0, long long wt1

// A convolution's forward pass y = cols(x) W^T (A gathered), its weight gradient
// dW = dy^T cols(x) (B gathered) and its input gradient dx = col2im(dy W) (A gathered from dy,
// B the weights rearranged). Each with the tile height its M needs (pixels: 128 rows; output
// channels: 32) and the three widths, so that only tiles that are used are compiled.
#define CONV_KERNELS(BN)                                                                        \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      conv_forward_128x##BN(COLUMNS, STRIDED(B), GEMM_TAIL) {                                   \
    gemm_tile<128, BN>(COLUMNS_OF_X, Strided{B, B0, B1}, GEMM_TAIL_ARGS);                       \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      conv_weight_grad_32x##BN(STRIDED(A), COLUMNS, GEMM_TAIL) {                                \
    gemm_tile<32, BN>(Strided{A, A0, A1}, COLUMNS_OF_X, GEMM_TAIL_ARGS);                        \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      conv_input_grad_128x##BN(WINDOW_GRADS, TAP_WEIGHTS, GEMM_TAIL) {                          \
    gemm_tile<128, BN>(WindowGrads{dy, dy0, dy1, H, W, OH, OW, O, KW, S, P},                    \
                       TapWeights{wt, wt0, wt1, O, KW}, GEMM_TAIL_ARGS);                        \
  }
CONV_KERNELS(16)
CONV_KERNELS(32)
CONV_KERNELS(64)
