// BatchNorm2d with batch statistics followed by SiLU, for float32 channels_last tensors on the CPU.
// A channels_last (N, C, H, W) tensor is a row-major (N*H*W, C) matrix: every pass below walks its rows,
// vectorized over channels. The forward reads the input twice (statistics, output); the backward reads
// grad and input once for the reductions (writing the SiLU gradient) and once more for the input gradient.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

using Vec = at::vec::Vectorized<float>;

// Rows summed in float before they are added into the double accumulators: float keeps the inner loop
// vectorized, double keeps the sum over hundreds of thousands of rows accurate.
constexpr int64_t kBlockRows = 64;
// At least this many elements per thread, so small late-stage tensors are not split into tiny chunks.
constexpr int64_t kMinChunkElements = 1 << 15;

// Calls fn(c, n) for the channel vectors [c, c + n) that cover [0, C); only the last may be partial.
template <typename Fn>
inline void for_channel_vectors(int64_t C, const Fn& fn) {
  int64_t c = 0;
  for (; c + Vec::size() <= C; c += Vec::size()) fn(c, static_cast<int64_t>(Vec::size()));
  if (c < C) fn(c, C - c);
}

inline Vec load(const float* p, int64_t n) {
  return n == Vec::size() ? Vec::loadu(p) : Vec::loadu(p, n);
}

inline void store(const Vec& v, float* p, int64_t n) {
  if (n == Vec::size()) {
    v.store(p);
  } else {
    v.store(p, n);
  }
}

// exp_u20 is torch's inline polynomial exp, with no call into Sleef per vector: a yolox-nano training step
// measured 0.456 -> 0.442 s against exp(); its error stays below the BatchNorm's own float rounding.
inline Vec sigmoid(const Vec& y) {
  const Vec one(1.0f);
  return one / (one + y.neg().exp_u20());
}

// Splits rows [0, M) into at most one chunk per thread and runs fn(chunk, row_begin, row_end) in parallel.
template <typename Fn>
void parallel_rows(int64_t M, int64_t chunks, const Fn& fn) {
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      fn(chunk, chunk * M / chunks, (chunk + 1) * M / chunks);
    }
  });
}

int64_t chunk_count(int64_t M, int64_t C) {
  const int64_t by_size = std::max<int64_t>(1, M * C / kMinChunkElements);
  return std::min<int64_t>(std::min<int64_t>(at::get_num_threads(), by_size), M);
}

// Sums two per-row float quantities over rows [row_begin, row_end) into acc_a, acc_b (double, length C).
// term(row, c, n, a, b) adds the row's channel vector [c, c + n) into the float accumulators a and b.
template <typename Term>
void sum_rows(int64_t row_begin, int64_t row_end, int64_t C, double* acc_a, double* acc_b, const Term& term) {
  std::vector<float> part_a(C), part_b(C);
  for (int64_t block = row_begin; block < row_end; block += kBlockRows) {
    std::fill(part_a.begin(), part_a.end(), 0.0f);
    std::fill(part_b.begin(), part_b.end(), 0.0f);
    const int64_t block_end = std::min(block + kBlockRows, row_end);
    for (int64_t row = block; row < block_end; ++row) {
      for_channel_vectors(C, [&](int64_t c, int64_t n) {
        Vec a = load(part_a.data() + c, n);
        Vec b = load(part_b.data() + c, n);
        term(row, c, n, a, b);
        store(a, part_a.data() + c, n);
        store(b, part_b.data() + c, n);
      });
    }
    for (int64_t c = 0; c < C; ++c) {
      acc_a[c] += part_a[c];
      acc_b[c] += part_b[c];
    }
  }
}

// Runs sum_rows on every chunk in parallel and adds the chunks' sums: returns (sum_a, sum_b), double, length C.
template <typename Term>
std::pair<std::vector<double>, std::vector<double>> reduce_rows(int64_t M, int64_t C, const Term& term) {
  const int64_t chunks = chunk_count(M, C);
  std::vector<double> partial(chunks * 2 * C, 0.0);
  parallel_rows(M, chunks, [&](int64_t chunk, int64_t begin, int64_t end) {
    double* acc = partial.data() + chunk * 2 * C;
    sum_rows(begin, end, C, acc, acc + C, term);
  });
  std::vector<double> sum_a(C, 0.0), sum_b(C, 0.0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (int64_t c = 0; c < C; ++c) {
      sum_a[c] += partial[(chunk * 2) * C + c];
      sum_b[c] += partial[(chunk * 2 + 1) * C + c];
    }
  }
  return {sum_a, sum_b};
}

void check_inputs(const at::Tensor& x2d, const at::Tensor& weight, const at::Tensor& bias) {
  TORCH_CHECK(x2d.dim() == 2 && x2d.is_contiguous(), "bn_silu: expects a contiguous (rows, channels) matrix");
  TORCH_CHECK(x2d.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                  bias.scalar_type() == at::kFloat, "bn_silu: float32 only");
  TORCH_CHECK(x2d.size(0) > 0 && weight.numel() == x2d.size(1) && bias.numel() == x2d.size(1) &&
                  weight.is_contiguous() && bias.is_contiguous(),
              "bn_silu: weight and bias need one contiguous value per channel");
}

// Per-channel scale w * invstd and shift b - mean * scale of the normalization, float, length C.
std::pair<std::vector<float>, std::vector<float>> affine(const at::Tensor& weight, const at::Tensor& bias,
                                                         const at::Tensor& mean, const at::Tensor& invstd) {
  const int64_t C = weight.numel();
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  const float* m = mean.data_ptr<float>();
  const float* s = invstd.data_ptr<float>();
  std::vector<float> scale(C), shift(C);
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = w[c] * s[c];
    shift[c] = b[c] - m[c] * scale[c];
  }
  return {scale, shift};
}

}  // namespace

// Returns (silu(batch_norm(x)), batch mean, biased batch variance, 1 / sqrt(variance + eps)).
std::vector<at::Tensor> bn_silu_forward(const at::Tensor& x2d, const at::Tensor& weight, const at::Tensor& bias,
                                        double eps) {
  check_inputs(x2d, weight, bias);
  const int64_t M = x2d.size(0), C = x2d.size(1);
  const float* x = x2d.data_ptr<float>();
  // Sums are of x minus the first row: the one-pass variance then cancels little even when |mean| >> std.
  const float* origin = x;
  auto sums = reduce_rows(M, C, [&](int64_t row, int64_t c, int64_t n, Vec& a, Vec& b) {
    const Vec d = load(x + row * C + c, n) - load(origin + c, n);
    a = a + d;
    b = at::vec::fmadd(d, d, b);
  });
  auto opts = x2d.options();
  at::Tensor mean = at::empty({C}, opts), var = at::empty({C}, opts), invstd = at::empty({C}, opts);
  float* mean_p = mean.data_ptr<float>();
  float* var_p = var.data_ptr<float>();
  float* invstd_p = invstd.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double shifted_mean = sums.first[c] / M;
    const double v = std::max(sums.second[c] / M - shifted_mean * shifted_mean, 0.0);
    mean_p[c] = static_cast<float>(origin[c] + shifted_mean);
    var_p[c] = static_cast<float>(v);
    invstd_p[c] = static_cast<float>(1.0 / std::sqrt(v + eps));
  }
  const auto coef = affine(weight, bias, mean, invstd);
  at::Tensor out = at::empty_like(x2d);
  float* out_p = out.data_ptr<float>();
  parallel_rows(M, chunk_count(M, C), [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for_channel_vectors(C, [&](int64_t c, int64_t n) {
        const Vec y = at::vec::fmadd(load(x + row * C + c, n), load(coef.first.data() + c, n),
                                     load(coef.second.data() + c, n));
        store(y * sigmoid(y), out_p + row * C + c, n);
      });
    }
  });
  return {out, mean, var, invstd};
}

// Returns (grad input, grad weight, grad bias) of silu(batch_norm(x)) from the forward's mean and invstd.
std::vector<at::Tensor> bn_silu_backward(const at::Tensor& grad2d, const at::Tensor& x2d, const at::Tensor& weight,
                                         const at::Tensor& bias, const at::Tensor& mean, const at::Tensor& invstd) {
  check_inputs(x2d, weight, bias);
  TORCH_CHECK(grad2d.sizes() == x2d.sizes() && grad2d.is_contiguous() && grad2d.scalar_type() == at::kFloat,
              "bn_silu: grad must be a contiguous float32 matrix shaped like the input");
  const int64_t M = x2d.size(0), C = x2d.size(1);
  const float* x = x2d.data_ptr<float>();
  const float* g = grad2d.data_ptr<float>();
  const float* mean_p = mean.data_ptr<float>();
  const auto coef = affine(weight, bias, mean, invstd);
  // First pass: the gradient reaching the normalized value (dy, kept in grad_input) and its two sums.
  at::Tensor grad_input = at::empty_like(x2d);
  float* dy_p = grad_input.data_ptr<float>();
  auto sums = reduce_rows(M, C, [&](int64_t row, int64_t c, int64_t n, Vec& a, Vec& b) {
    const Vec xv = load(x + row * C + c, n);
    const Vec y = at::vec::fmadd(xv, load(coef.first.data() + c, n), load(coef.second.data() + c, n));
    const Vec s = sigmoid(y);
    const Vec one(1.0f);
    const Vec dy = load(g + row * C + c, n) * s * at::vec::fmadd(y, one - s, one);
    store(dy, dy_p + row * C + c, n);
    a = a + dy;
    b = at::vec::fmadd(dy, xv - load(mean_p + c, n), b);
  });
  at::Tensor grad_weight = at::empty({C}, x2d.options()), grad_bias = at::empty({C}, x2d.options());
  // grad_input = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) = dy * k + (x - mean) * p + q per
  // channel; x - mean stays explicit so a large mean does not cancel in float.
  std::vector<float> k(C), p(C), q(C);
  const float* w = weight.data_ptr<float>();
  const float* invstd_p = invstd.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double s = invstd_p[c];
    grad_bias.data_ptr<float>()[c] = static_cast<float>(sums.first[c]);
    grad_weight.data_ptr<float>()[c] = static_cast<float>(sums.second[c] * s);
    const double kc = w[c] * s;
    const double proj = sums.second[c] * s * s / M;
    k[c] = static_cast<float>(kc);
    p[c] = static_cast<float>(-proj * kc);
    q[c] = static_cast<float>(-sums.first[c] / M * kc);
  }
  parallel_rows(M, chunk_count(M, C), [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for_channel_vectors(C, [&](int64_t c, int64_t n) {
        float* dst = dy_p + row * C + c;
        const Vec gx = at::vec::fmadd(load(dst, n), load(k.data() + c, n),
                                      at::vec::fmadd(load(x + row * C + c, n) - load(mean_p + c, n),
                                                     load(p.data() + c, n), load(q.data() + c, n)));
        store(gx, dst, n);
      });
    }
  });
  return {grad_input, grad_weight, grad_bias};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &bn_silu_forward, "BatchNorm (batch statistics) + SiLU forward, channels_last float32");
  m.def("backward", &bn_silu_backward, "BatchNorm (batch statistics) + SiLU backward, channels_last float32");
}
