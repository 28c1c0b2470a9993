// Elementwise layers and layout changes: an activation on its own, inverted dropout, and
// Flatten's reordering of a channels-last map into the (c, h, w) order Dense weights expect.
#include "common.cuh"

extern "C" __global__ void activation_forward(const float* x, float* y, long long n, int act) {
  FOR_EACH(n)
  y[i] = activate(x[i], act);
}

// dx = dy * act'(y), then times act'(aux) for the activation before it, if any.
extern "C" __global__ void activation_backward(const float* dy, const float* y, float* dx,
                                               long long n, int act, const float* aux,
                                               int aux_act) {
  FOR_EACH(n)
  dx[i] = masked(dy[i] * act_grad(y[i], act), aux, aux_act, i);
}

// Inverted dropout: y = x * keep / (1 - rate), keep = uniform >= rate from the hash of
// (seed, *step, stream, i). The step is read from device memory, so a captured graph draws new
// masks at every replay; the backward pass draws the same mask again instead of storing it.
extern "C" __global__ void dropout(const float* x, float* y, long long n, float rate,
                                   unsigned int seed, const long long* step, unsigned int stream,
                                   const float* aux, int aux_act) {
  FOR_EACH(n)
  const unsigned int key = dropout_key(seed, *step, stream);
  const float keep = uniform(key, (unsigned int)i) >= rate ? 1.f / (1.f - rate) : 0.f;
  y[i] = masked(x[i] * keep, aux, aux_act, i);
}

// y: (N, C*H*W) in (c, h, w) order from x: (N, H, W, C).
extern "C" __global__ void nhwc_to_flat(const float* x, float* y, int N, int H, int W, int C) {
  FOR_EACH((long long)N * H * W * C)
  const Nhwc p = nhwc_at(i, H, W, C);
  const int n = p.n, h = p.h, w = p.w, c = p.c;
  y[(((long long)n * C + c) * H + h) * W + w] = x[i];
}

// The inverse, for the gradient: dx: (N, H, W, C) from dy: (N, C*H*W); then times act'(aux).
extern "C" __global__ void flat_to_nhwc(const float* dy, float* dx, int N, int H, int W, int C,
                                        const float* aux, int aux_act) {
  FOR_EACH((long long)N * H * W * C)
  const Nhwc p = nhwc_at(i, H, W, C);
  const int n = p.n, h = p.h, w = p.w, c = p.c;
  dx[i] = masked(dy[(((long long)n * C + c) * H + h) * W + w], aux, aux_act, i);
}
