// Matrix products C = A B (tile.cuh): the arithmetic of Dense, forward and backward, and of
// Conv over written-out columns. A: (M, K) and B: (K, N) are read through any element strides,
// so transposed views cost nothing; C: (M, N) is contiguous. Then the split-K reduction, and
// the column sums of a bias gradient.
#include "tile.cuh"

// The tile shapes: BM rows (32 or 128) by BN columns (16, 32 or 64), chosen by the wrapper from
// the problem's M and N so that narrow products do not waste most of a tile.
#define GEMM_KERNEL(BM, BN)                                                                    \
  extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                    \
      gemm_##BM##x##BN(STRIDED(A), STRIDED(B), GEMM_TAIL) {                                     \
    gemm_tile<BM, BN>(Strided{A, A0, A1}, Strided{B, B0, B1}, GEMM_TAIL_ARGS);                  \
  }
GEMM_KERNEL(128, 16)
GEMM_KERNEL(128, 32)
GEMM_KERNEL(128, 64)
GEMM_KERNEL(32, 16)
GEMM_KERNEL(32, 32)
GEMM_KERNEL(32, 64)

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
