// Matrix products C = A B on shared-memory tiles: the arithmetic of Conv and Dense, forward and
// backward. A: (M, K) and B: (K, N) are read through any element strides, so transposed views
// cost nothing, or (a convolution's columns) gathered from its input as they are needed;
// C: (M, N) is contiguous.
//
// Split-K: grid.z blocks share one output tile, each summing its own range of K into its own
// slice of a partial buffer C[z] (no epilogue); splitk_reduce then adds the slices in a fixed
// order. Weight gradients reduce over the whole batch (K = N*OH*OW): without the split a handful
// of blocks would do all the work; without atomics the result repeats bit for bit.
#include "common.cuh"

#define GEMM_BK 16
#define GEMM_THREADS 256

// v, the finished sum for C[m, n]: + bias[n], then the activation, then times act'(aux[m, n]).
__device__ __forceinline__ float epilogue(float v, int m, int n, int N, const float* bias,
                                          int has_bias, int act, const float* aux, int aux_act) {
  if (has_bias) v += bias[n];
  v = activate(v, act);
  return masked(v, aux, aux_act, (long long)m * N + n);
}

// The operands, read element by element as the tiles are filled.
// A matrix in memory, read through any element strides (a transposed view costs nothing).
struct Strided {
  const float* p;
  long long s0, s1;
  __device__ __forceinline__ float at(int i, int j) const { return p[i * s0 + j * s1]; }
  // Whether consecutive threads should walk down the first index (it is not the contiguous one).
  __device__ __forceinline__ bool rows_fast() const { return s1 != 1; }
};

// The im2col columns of x: (N, H, W, C) (any strides; see conv.cu), never written out: element
// (row, col) is gathered from x when the tile is filled (an implicit-GEMM convolution). Rows
// (n, oh, ow), columns (c, kh, kw); zero in the padding.
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

// One BM x BN tile of C = A B per block of 256 threads, each thread a TM x TN patch of it.
template <int BM, int BN, class MatA, class MatB>
__device__ __forceinline__ void gemm_tile(const MatA a, const MatB b, float* C, int M, int N, int K,
                                          int kchunk, const float* bias, int has_bias, int act,
                                          const float* aux, int aux_act) {
  constexpr int TM = BM / 16, TN = BN / 16;
  __shared__ float As[GEMM_BK][BM + 1];
  __shared__ float Bs[GEMM_BK][BN + 1];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k_begin = blockIdx.z * kchunk, k_end = min(K, k_begin + kchunk);
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  const bool a_k_fast = !a.rows_fast(), b_n_fast = !b.rows_fast();
  for (int k0 = k_begin; k0 < k_end; k0 += GEMM_BK) {
    // Consecutive threads read along whichever dimension is contiguous in memory.
    for (int i = tid; i < BM * GEMM_BK; i += GEMM_THREADS) {
      const int mm = a_k_fast ? i / GEMM_BK : i % BM, kk = a_k_fast ? i % GEMM_BK : i / BM;
      const int m = m0 + mm, k = k0 + kk;
      As[kk][mm] = (m < M && k < k_end) ? a.at(m, k) : 0.f;
    }
    for (int i = tid; i < GEMM_BK * BN; i += GEMM_THREADS) {
      const int nn = b_n_fast ? i % BN : i / GEMM_BK, kk = b_n_fast ? i / BN : i % GEMM_BK;
      const int n = n0 + nn, k = k0 + kk;
      Bs[kk][nn] = (n < N && k < k_end) ? b.at(k, n) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < GEMM_BK; ++kk) {
      float av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < TN; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }

  const bool partial = gridDim.z > 1;
  float* out = C + (long long)blockIdx.z * M * N;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + 16 * i;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tx + 16 * j;
      if (m < M && n < N)
        out[(long long)m * N + n] =
            partial ? acc[i][j] : epilogue(acc[i][j], m, n, N, bias, has_bias, act, aux, aux_act);
    }
  }
}

// Every product kernel ends with the same arguments: C, its shape, the split and the epilogue.
#define GEMM_TAIL                                                                              \
  float *C, int M, int N, int K, int kchunk, const float *bias, int has_bias, int act,        \
      const float *aux, int aux_act
#define GEMM_TAIL_ARGS C, M, N, K, kchunk, bias, has_bias, act, aux, aux_act
#define STRIDED(p) const float *p, long long p##0, long long p##1
#define COLUMNS                                                                                \
  const float *x, long long sn, long long sh, long long sw, long long sc, int H, int W, int OH, \
      int OW, int KW, int S, int P
#define COLUMNS_OF_X Columns{x, sn, sh, sw, sc, H, W, OH, OW, KW, S, P}
#define WINDOW_GRADS                                                                     \
  const float *dy, long long dy0, long long dy1, int H, int W, int OH, int OW, int O, int KW, \
      int S, int P
#define TAP_WEIGHTS const float *wt, long long wt0, long long wt1

// For each tile shape: the plain product, a convolution's forward pass y = cols(x) W^T (A
// gathered), its weight gradient dW = dy^T cols(x) (B gathered) and its input gradient
// dx = col2im(dy W) (A gathered from dy, B the weights rearranged). The shapes: BM rows (32 or
// 128) by BN columns (16, 32 or 64), chosen by the wrapper from the problem's M and N so that
// narrow products do not waste most of a tile.
#define GEMM_KERNELS(BM, BN)                                                                    \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      gemm_##BM##x##BN(STRIDED(A), STRIDED(B), GEMM_TAIL) {                                     \
    gemm_tile<BM, BN>(Strided{A, A0, A1}, Strided{B, B0, B1}, GEMM_TAIL_ARGS);                  \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      conv_forward_##BM##x##BN(COLUMNS, STRIDED(B), GEMM_TAIL) {                                \
    gemm_tile<BM, BN>(COLUMNS_OF_X, Strided{B, B0, B1}, GEMM_TAIL_ARGS);                        \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      conv_weight_grad_##BM##x##BN(STRIDED(A), COLUMNS, GEMM_TAIL) {                            \
    gemm_tile<BM, BN>(Strided{A, A0, A1}, COLUMNS_OF_X, GEMM_TAIL_ARGS);                        \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      conv_input_grad_##BM##x##BN(WINDOW_GRADS, TAP_WEIGHTS, GEMM_TAIL) {                       \
    gemm_tile<BM, BN>(WindowGrads{dy, dy0, dy1, H, W, OH, OW, O, KW, S, P},                     \
                      TapWeights{wt, wt0, wt1, O, KW}, GEMM_TAIL_ARGS);                         \
  }
GEMM_KERNELS(128, 16)
GEMM_KERNELS(128, 32)
GEMM_KERNELS(128, 64)
GEMM_KERNELS(32, 16)
GEMM_KERNELS(32, 32)
GEMM_KERNELS(32, 64)

// C[m, n] = epilogue(sum over z of part[z, m, n]), the slices added in order z = 0, 1, ...
extern "C" __global__ void splitk_reduce(const float* part, int splits, float* C, int M, int N,
                                         const float* bias, int has_bias, int act,
                                         const float* aux, int aux_act) {
  const long long size = (long long)M * N;
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= size) return;
  float v = 0.f;
  for (int z = 0; z < splits; ++z) v += part[z * size + i];
  C[i] = epilogue(v, (int)(i / N), (int)(i % N), N, bias, has_bias, act, aux, aux_act);
}

// part[z, c] = the sum of A[r, c] over block z's rows [z * chunk, (z + 1) * chunk): the first
// stage of a bias gradient (column sums of dy: (rows, cols)); splitk_reduce is the second.
extern "C" __global__ void colsum_partial(const float* A, int rows, int cols, int chunk,
                                          float* part) {
  __shared__ float s[GEMM_THREADS];
  const int t = threadIdx.x;
  const int r0 = blockIdx.x * chunk, r1 = min(rows, r0 + chunk);
  for (int c0 = 0; c0 < cols; c0 += GEMM_THREADS) {
    const int width = min(GEMM_THREADS, cols - c0), lanes = GEMM_THREADS / width;
    const int c = c0 + t % width, lane = t / width;
    float acc = 0.f;
    if (lane < lanes)
      for (int r = r0 + lane; r < r1; r += lanes) acc += A[(long long)r * cols + c];
    s[t] = acc;
    __syncthreads();
    if (t < width) {
      float sum = 0.f;
      for (int l = 0; l < lanes; ++l) sum += s[l * width + t];
      part[(long long)blockIdx.x * cols + c0 + t] = sum;
    }
    __syncthreads();
  }
}
