// The tiled matrix product every product kernel runs: C = A B on shared-memory tiles, with A
// and B read element by element through loaders (a strided matrix here; a convolution's
// gathered columns in conv.cu), so one tile loop serves plain and implicit-GEMM products.
//
// Split-K: grid.z blocks share one output tile, each summing its own range of K into its own
// slice of a partial buffer C[z] (no epilogue); splitk_reduce (gemm.cu) then adds the slices in
// a fixed order. Weight gradients reduce over the whole batch (K = N*OH*OW): without the split a
// handful of blocks would do all the work; without atomics the result repeats bit for bit.
#pragma once
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

// A matrix in memory, read through any element strides (a transposed view costs nothing).
struct Strided {
  const float* p;
  long long s0, s1;
  __device__ __forceinline__ float at(int i, int j) const { return p[i * s0 + j * s1]; }
  // Whether consecutive threads should walk down the first index (it is not the contiguous one).
  __device__ __forceinline__ bool rows_fast() const { return s1 != 1; }
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
  // blockIdx.x numbers the output's tiles row by row (a grid's y, at most 65535, is too short
  // for the M of a large batch's first convolution, 8.4 million pixels at 128 rows a tile).
  const int n_tiles = (N + BN - 1) / BN;
  const int m0 = blockIdx.x / n_tiles * BM, n0 = blockIdx.x % n_tiles * BN;
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
