// Losses on logits, fused with their output activation and their gradient: one thread per row
// writes the row's loss, whether its prediction was right, and dlogits (already divided by the
// batch size, as the loss is the batch mean). batch_result then sums the rows on the device.
#include "common.cuh"

// Softmax + cross-entropy. z: (rows, k), y: (rows,) class indices; the target is 1 - smoothing
// on the label plus smoothing / k on every class (label smoothing; 0: one-hot).
extern "C" __global__ void softmax_xent(const float* z, const long long* y, int rows, int k,
                                        float* dz, float* row_loss, int* row_hit,
                                        float smoothing) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float* zr = z + (long long)r * k;
  float top = zr[0];
  int best = 0;
  for (int j = 1; j < k; ++j)
    if (zr[j] > top) {
      top = zr[j];
      best = j;
    }
  float total = 0.f, spread = 0.f;
  for (int j = 0; j < k; ++j) {
    total += expf(zr[j] - top);
    spread += zr[j] - top;
  }
  const int label = (int)y[r];
  const float picked = (1.f - smoothing) * (zr[label] - top) + smoothing * (spread / k);
  row_loss[r] = logf(total) - picked;
  row_hit[r] = best == label;
  const float scale = 1.f / rows, uniform = smoothing / k;
  for (int j = 0; j < k; ++j) {
    const float target = (j == label ? 1.f - smoothing : 0.f) + uniform;
    dz[(long long)r * k + j] = (expf(zr[j] - top) / total - target) * scale;
  }
}

// Sigmoid + binary cross-entropy. z: (rows, 1), y: (rows,) of 0 / 1, smoothed towards 1/2
// (targets 1 - smoothing/2 and smoothing/2).
extern "C" __global__ void sigmoid_bce(const float* z, const long long* y, int rows, float* dz,
                                       float* row_loss, int* row_hit, float smoothing) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float v = z[r], t = (float)y[r] * (1.f - smoothing) + 0.5f * smoothing;
  // log(1 + exp(-|v|)) + max(v, 0) - v*t: the loss without overflow.
  row_loss[r] = fmaxf(v, 0.f) - v * t + log1pf(expf(-fabsf(v)));
  row_hit[r] = (v > 0.f) == (y[r] != 0);
  dz[r] = (activate(v, ACT_SIGMOID) - t) / rows;
}

// out_loss = mean of row_loss, out_hits = sum of row_hit, by one block of 256 threads (a fixed
// order of additions, so the result repeats).
extern "C" __global__ void batch_result(const float* row_loss, const int* row_hit, int rows,
                                        float* out_loss, int* out_hits) {
  __shared__ float ls[256];
  __shared__ int hs[256];
  const int t = threadIdx.x;
  float l = 0.f;
  int h = 0;
  for (int r = t; r < rows; r += 256) {
    l += row_loss[r];
    h += row_hit[r];
  }
  ls[t] = l;
  hs[t] = h;
  __syncthreads();
  for (int width = 128; width > 0; width /= 2) {
    if (t < width) {
      ls[t] += ls[t + width];
      hs[t] += hs[t + width];
    }
    __syncthreads();
  }
  if (t == 0) {
    *out_loss = ls[0] / rows;
    *out_hits = hs[0];
  }
}
