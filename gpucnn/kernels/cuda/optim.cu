// Optimiser updates over one flat buffer of every parameter (p), its gradient (g) and its
// slots (m, v): one launch per step whatever the number of layers. Weight decay adds wd * p to
// the gradient (but AdamW's). *step counts the updates made before this one; advance() adds one at the end
// of a step, so a captured graph needs no value from the host.
#include "common.cuh"

extern "C" __global__ void sgd(float* p, const float* g, long long n, float lr, float wd) {
  FOR_EACH(n)
  p[i] -= lr * (g[i] + wd * p[i]);
}

// v = momentum * v + g; p -= lr * v (Nesterov: p -= lr * (g + momentum * v)).
extern "C" __global__ void momentum(float* p, const float* g, float* v, long long n, float lr,
                                    float mu, int nesterov, float wd) {
  FOR_EACH(n)
  const float grad = g[i] + wd * p[i];
  const float vel = mu * v[i] + grad;
  v[i] = vel;
  p[i] -= lr * (nesterov ? grad + mu * vel : vel);
}

// Adam with bias correction; t = *step + 1 is this update's number. Decoupled (AdamW), the
// weight decay shrinks p by lr * wd * p instead of adding wd * p to the gradient.
extern "C" __global__ void adam(float* p, const float* g, float* m, float* v, long long n,
                                const long long* step, float lr, float beta1, float beta2,
                                float eps, float wd, int decoupled) {
  FOR_EACH(n)
  const double t = (double)(*step + 1);
  const float step_size = (float)(lr / (1.0 - pow((double)beta1, t)));
  const float v_scale = (float)(1.0 / (1.0 - pow((double)beta2, t)));
  const float grad = decoupled ? g[i] : g[i] + wd * p[i];
  const float mi = beta1 * m[i] + (1.f - beta1) * grad;
  const float vi = beta2 * v[i] + (1.f - beta2) * grad * grad;
  m[i] = mi;
  v[i] = vi;
  const float shrunk = decoupled ? p[i] * (1.f - lr * wd) : p[i];
  p[i] = shrunk - step_size * mi / (sqrtf(vi * v_scale) + eps);
}

// counters[0]: steps taken (dropout's key), counters[1]: optimiser updates (Adam's t).
extern "C" __global__ void advance(long long* counters) {
  counters[0] += 1;
  counters[1] += 1;
}
