// Batch normalisation in training, channels-last: each channel is a column of x: (R, C), its R
// values the batch's N*H*W positions after a Conv or its N rows after a Dense. The column sums
// run through colsum (gemm.cu), in a fixed order (no atomics); these kernels are the
// elementwise passes between them.
#include "common.cuh"

// xc = x - sum / R, kept in xhat until it is scaled, and its square, whose column sums are R
// times the (biased) variance: two passes over x, as exact in float32 as the mean allows.
extern "C" __global__ void batch_norm_center(const float* x, const float* sum, float* xc,
                                             float* square, int R, int C) {
  FOR_EACH((long long)R * C)
  const float v = x[i] - sum[(int)i % C] / (float)R;
  xc[i] = v;
  square[i] = v * v;
}

// Per channel: stats: (2, C), the column sums of x and of xc^2, becomes (mean, 1/sqrt(var +
// eps)); the running statistics move towards the mean and the unbiased variance by momentum.
extern "C" __global__ void batch_norm_stats(float* stats, float* running_mean, float* running_var,
                                            int R, int C, float momentum, float eps) {
  FOR_EACH(C)
  const float mean = stats[i] / (float)R, var = stats[C + i] / (float)R;
  stats[i] = mean;
  stats[C + i] = 1.f / sqrtf(var + eps);
  running_mean[i] = (1.f - momentum) * running_mean[i] + momentum * mean;
  running_var[i] = (1.f - momentum) * running_var[i] + momentum * var * ((float)R / (R - 1));
}

// xhat = xc / sqrt(var + eps), kept for the backward pass, and y = act(gamma * xhat + beta).
extern "C" __global__ void batch_norm_scale(float* xhat, const float* stats, const float* gamma,
                                            const float* beta, float* y, int R, int C, int act) {
  FOR_EACH((long long)R * C)
  const int c = (int)i % C;
  const float v = xhat[i] * stats[C + c];
  xhat[i] = v;
  y[i] = activate(gamma[c] * v + beta[c], act);
}

// out = a * b, elementwise: dy * xhat, whose column sums are the gradient of gamma.
extern "C" __global__ void multiply(const float* a, const float* b, float* out, long long n) {
  FOR_EACH(n)
  out[i] = a[i] * b[i];
}

// dx = gamma / sqrt(var + eps) * (dy - xhat * dgamma / R - dbeta / R), times act'(aux): the two
// sums carry the gradient through the batch's mean and variance, which every input moved.
extern "C" __global__ void batch_norm_backward(const float* dy, const float* xhat,
                                               const float* stats, const float* gamma,
                                               const float* dgamma, const float* dbeta,
                                               float* dx, int R, int C, const float* aux,
                                               int aux_act) {
  FOR_EACH((long long)R * C)
  const int c = (int)i % C;
  const float g = dy[i] - xhat[i] * (dgamma[c] / (float)R) - dbeta[c] / (float)R;
  dx[i] = masked(gamma[c] * stats[C + c] * g, aux, aux_act, i);
}
