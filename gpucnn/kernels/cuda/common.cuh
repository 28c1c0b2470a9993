// Shared by every kernel of the GPU set: activation codes, their derivatives, and the dropout
// hash. Float32 throughout; one thread per output element unless a kernel says otherwise.
#pragma once

// Activation codes, as gpucnn.kernels.ACTIVATIONS numbers them.
#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_SIGMOID 2
#define ACT_TANH 3

__device__ __forceinline__ float activate(float z, int act) {
  switch (act) {
    case ACT_RELU: return z > 0.f ? z : 0.f;
    case ACT_SIGMOID: return 0.5f * (1.f + tanhf(0.5f * z));  // no exp to overflow
    case ACT_TANH: return tanhf(z);
    default: return z;
  }
}

// The activation's derivative, written in terms of its output y = act(z) (what is saved).
__device__ __forceinline__ float act_grad(float y, int act) {
  switch (act) {
    case ACT_RELU: return y > 0.f ? 1.f : 0.f;
    case ACT_SIGMOID: return y * (1.f - y);
    case ACT_TANH: return 1.f - y * y;
    default: return 1.f;
  }
}

// One thread per element i < n of a flat loop.
#define FOR_EACH(n)                                                       \
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
  if (i >= (n)) return;

// The coordinates of element i of a channels-last (N, H, W, C) tensor. 32-bit arithmetic: 64-bit
// division is many times slower (the wrappers refuse tensors of 2**31 elements or more).
struct Nhwc {
  int n, h, w, c;
};

__device__ __forceinline__ Nhwc nhwc_at(long long i, int H, int W, int C) {
  int t = (int)i;
  Nhwc p;
  p.c = t % C;
  t /= C;
  p.w = t % W;
  t /= W;
  p.h = t % H;
  p.n = t / H;
  return p;
}

// A gradient dx of a tensor x that an activation produced is multiplied by act'(x) where it is
// written ("aux": x itself, laid out as dx), so no separate kernel runs the activation backward.
__device__ __forceinline__ float masked(float g, const float* aux, int aux_act, long long i) {
  return aux_act == ACT_NONE ? g : g * act_grad(aux[i], aux_act);
}

// An integer hash (the "lowbias32" constants), the source of dropout's random numbers: keyed by
// (seed, step, stream, element), so a mask depends on nothing but those numbers.
__device__ __forceinline__ unsigned int mix32(unsigned int x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// A uniform number in [0, 1) with 24 random bits.
__device__ __forceinline__ float uniform(unsigned int key, unsigned int i) {
  return (float)(mix32(key + mix32(i)) >> 8) * (1.f / 16777216.f);
}

__device__ __forceinline__ unsigned int dropout_key(unsigned int seed, long long step,
                                                    unsigned int stream) {
  return mix32(mix32(seed ^ mix32(stream)) + (unsigned int)step);
}
