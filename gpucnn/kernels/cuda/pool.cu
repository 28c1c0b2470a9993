// Pooling, channels-last. Max pooling: x: (N, H, W, C) -> y: (N, OH, OW, C) over K x K windows
// with stride S. The forward pass keeps the window offset (kh * K + kw) of each maximum; the
// first maximum in row-major window order wins a tie, as in PyTorch.
//
// The bias and activation of the convolution before the pool can be applied here, to the
// maxima only: y = act(max(z) + b) = max(act(z + b)) for any non-decreasing activation, so the
// convolution writes z = x * W and no pass goes over the full-size map to finish it. The
// backward pass then multiplies by act'(y) where it sends a gradient.
#include "common.cuh"

// The windows o, from lo to hi, of the OUT along one axis that cover position h of the input:
// o*S <= h < o*S + K. A backward pass gathers its gradient from them.
struct Span {
  int lo, hi;
};

__device__ __forceinline__ Span windows_over(int h, int K, int S, int OUT) {
  return {h < K ? 0 : (h - K) / S + 1, min(OUT - 1, h / S)};
}

extern "C" __global__ void maxpool_forward(const float* x, float* y, int* arg, int N, int H,
                                           int W, int C, int OH, int OW, int K, int S,
                                           const float* bias, int has_bias, int act) {
  FOR_EACH((long long)N * OH * OW * C)
  const Nhwc p = nhwc_at(i, OH, OW, C);
  const int n = p.n, oh = p.h, ow = p.w, c = p.c;
  float best = __int_as_float(0xff800000);  // -infinity
  int at = 0;
  for (int kh = 0; kh < K; ++kh)
    for (int kw = 0; kw < K; ++kw) {
      const float v = x[(((long long)n * H + oh * S + kh) * W + ow * S + kw) * C + c];
      if (v > best) {
        best = v;
        at = kh * K + kw;
      }
    }
  y[i] = activate(has_bias ? best + bias[c] : best, act);
  arg[i] = at;
}

// The backward pass when the windows tile x exactly (S == K, H == OH*K, W == OW*K): one thread
// per window writes its K*K gradients, dy * act'(y) where the maximum was and 0 elsewhere, times
// act'(aux).
extern "C" __global__ void maxpool_backward_tiled(const float* dy, const int* arg, float* dx,
                                                  int N, int H, int W, int C, int OH, int OW,
                                                  int K, const float* y, int act,
                                                  const float* aux, int aux_act) {
  FOR_EACH((long long)N * OH * OW * C)
  const Nhwc p = nhwc_at(i, OH, OW, C);
  const int n = p.n, oh = p.h, ow = p.w, c = p.c;
  const float g = dy[i] * act_grad(y[i], act);
  const int at = arg[i];
  for (int kh = 0; kh < K; ++kh)
    for (int kw = 0; kw < K; ++kw) {
      const long long j = (((long long)n * H + oh * K + kh) * W + ow * K + kw) * C + c;
      dx[j] = masked(kh * K + kw == at ? g : 0.f, aux, aux_act, j);
    }
}

// dx: (N, H, W, C), each element gathering dy * act'(y) from the windows (possibly several
// when S < K) whose maximum it was; then times act'(aux).
extern "C" __global__ void maxpool_backward(const float* dy, const int* arg, float* dx, int N,
                                            int H, int W, int C, int OH, int OW, int K, int S,
                                            const float* y, int act, const float* aux,
                                            int aux_act) {
  FOR_EACH((long long)N * H * W * C)
  const Nhwc p = nhwc_at(i, H, W, C);
  const int n = p.n, h = p.h, w = p.w, c = p.c;
  const Span rows = windows_over(h, K, S, OH), cols = windows_over(w, K, S, OW);
  float acc = 0.f;
  for (int oh = rows.lo; oh <= rows.hi; ++oh)
    for (int ow = cols.lo; ow <= cols.hi; ++ow) {
      const long long o = (((long long)n * OH + oh) * OW + ow) * C + c;
      if (arg[o] == (h - oh * S) * K + (w - ow * S)) acc += dy[o] * act_grad(y[o], act);
    }
  dx[i] = masked(acc, aux, aux_act, i);
}

// Average pooling: y: (N, OH, OW, C) = the mean of each K x K window of x: (N, H, W, C), with
// stride S.
extern "C" __global__ void avgpool_forward(const float* x, float* y, int N, int H, int W, int C,
                                           int OH, int OW, int K, int S) {
  FOR_EACH((long long)N * OH * OW * C)
  const Nhwc p = nhwc_at(i, OH, OW, C);
  float sum = 0.f;
  for (int kh = 0; kh < K; ++kh)
    for (int kw = 0; kw < K; ++kw)
      sum += x[(((long long)p.n * H + p.h * S + kh) * W + p.w * S + kw) * C + p.c];
  y[i] = sum / (float)(K * K);
}

// dx: (N, H, W, C), each element gathering its share, dy / (K*K), of every window it is in;
// then times act'(aux).
extern "C" __global__ void avgpool_backward(const float* dy, float* dx, int N, int H, int W,
                                            int C, int OH, int OW, int K, int S,
                                            const float* aux, int aux_act) {
  FOR_EACH((long long)N * H * W * C)
  const Nhwc p = nhwc_at(i, H, W, C);
  const Span rows = windows_over(p.h, K, S, OH), cols = windows_over(p.w, K, S, OW);
  float sum = 0.f;
  for (int oh = rows.lo; oh <= rows.hi; ++oh)
    for (int ow = cols.lo; ow <= cols.hi; ++ow)
      sum += dy[(((long long)p.n * OH + oh) * OW + ow) * C + p.c];
  dx[i] = masked(sum / (float)(K * K), aux, aux_act, i);
}

// Global average pooling: y: (N, C) = the mean of each channel of x: (N, H, W, C) over its HW
// positions. One thread per (n, c) sums them in order (no atomics: the same bits every run);
// neighbouring threads read neighbouring channels.
extern "C" __global__ void global_avgpool_forward(const float* x, float* y, int N, int HW,
                                                  int C) {
  FOR_EACH((long long)N * C)
  const int n = (int)i / C, c = (int)i % C;
  const float* channel = x + (long long)n * HW * C + c;
  float sum = 0.f;
  for (int j = 0; j < HW; ++j) sum += channel[(long long)j * C];
  y[i] = sum / (float)HW;
}

// dx: (N, H, W, C): every position of a channel gets an equal share of its dy: (N, C), times
// act'(aux).
extern "C" __global__ void global_avgpool_backward(const float* dy, float* dx, int N, int HW,
                                                   int C, const float* aux, int aux_act) {
  FOR_EACH((long long)N * HW * C)
  const int c = (int)(i % C), n = (int)(i / ((long long)HW * C));
  dx[i] = masked(dy[(long long)n * C + c] / (float)HW, aux, aux_act, i);
}
