// The recurrences of `native` (impls/native.py): one layer in one direction,
// forward and backward through time, for RNN (tanh, relu), LSTM and GRU, in float32
// and float64.
//
// Plain C++ behind a C ABI, called through ctypes with raw pointers: no torch
// headers, so the one-time build takes seconds, and a call costs a few
// microseconds, not a dispatcher round trip per step. Python does what is one big
// GEMM over the whole sequence (the input projection, the weight gradients); this
// file does what is sequential: per step, the recurrent product and every gate's
// elementwise work in one pass over the step's gate block.
//
// Layout: torch's packed form. A layer's rows are time step after time step; step t
// has batch_sizes[t] rows, a prefix of the batch. The running state lives in a
// (batch, width) buffer whose first batch_sizes[t] rows step t reads and rewrites,
// in both directions, so that after the last step it holds h_n (and c_n), and after
// the backward it holds the gradient of h_0 (and c_0). Gate blocks are in torch's
// order: LSTM i, f, g, o; GRU r, z, n.
//
// Vectorisation: the build is per instruction set (impls/native.py picks the flags
// from torch's own CPU capability), and the loops below are written so that GCC's
// auto-vectoriser takes them: float32's sigmoid and tanh are branch-free
// polynomials here; float64 calls the C library's exp and tanh (it is the fuzzer's
// dtype, not the benchmarks', so accuracy comes first).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using index_t = int64_t;

// BLAS ?gemm_ (Fortran interface, 32-bit integers), found by the Python side in the
// library torch already loaded (MKL's on x86 builds). Absent, the loops below do the
// products themselves.
using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                          const int*, const float*, const int*, const float*, float*, const int*);
using dgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
                          const int*, const double*, const int*, const double*, double*, const int*);
sgemm_fn blas_sgemm = nullptr;
dgemm_fn blas_dgemm = nullptr;

// Below this many multiply-adds, or at most this many rows, a product is a few
// vector FMAs per row: BLAS's call and packing overhead would dominate.
constexpr index_t kSmallProduct = 1 << 15;
constexpr index_t kFewRows = 2;

// ---------------------------------------------------------------------------------
// Elementwise functions.

inline float bits_to_float(int32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// exp(x) for x in [-87.3, 88.7] (callers clamp): x = n ln2 + r, |r| <= ln2/2,
// exp(r) by its degree-7 Taylor polynomial (truncation below 6e-9 relative, a tenth
// of float32's epsilon), scaled by 2^n built in the exponent bits.
inline float exp_reduced(float x) {
    const float n = std::floor(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;  // ln2 in two parts (Cody-Waite), so r is exact
    r = r + n * 2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t exponent = static_cast<int32_t>(n) + 127;
    return p * bits_to_float(exponent << 23);
}

// exp(x) - 1 for x in [0, 18], accurate relative to the result near 0 (where tanh
// needs it): expm1(r) by its Taylor polynomial without the constant term, then
// 2^n (1 + expm1(r)) - 1 = (2^n - 1) + 2^n expm1(r), exact for n = 0.
inline float expm1_reduced(float x) {
    const float n = std::floor(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r * r + r;
    const float scale = bits_to_float((static_cast<int32_t>(n) + 127) << 23);
    return (scale - 1.0f) + scale * p;
}

// Ternaries rather than std::min/max: a NaN falls through every comparison and
// stays NaN, as in torch.
inline float sigmoid(float x) {
    float minus = -x;
    minus = minus > 88.7f ? 88.7f : minus;
    minus = minus < -87.3f ? -87.3f : minus;
    return 1.0f / (1.0f + exp_reduced(minus));
}

// tanh(x) = sign(x) e / (e + 2), e = expm1(2|x|); |x| >= 9 is +-1 in float32.
inline float tanh_(float x) {
    float a = std::fabs(x);
    a = a > 9.0f ? 9.0f : a;
    const float e = expm1_reduced(2.0f * a);
    return std::copysign(e / (e + 2.0f), x);
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double tanh_(double x) { return std::tanh(x); }

template <typename T>
void sigmoid_inplace(T* __restrict x, index_t n) {
    for (index_t j = 0; j < n; ++j) x[j] = sigmoid(x[j]);
}

template <typename T>
void tanh_inplace(T* __restrict x, index_t n) {
    for (index_t j = 0; j < n; ++j) x[j] = tanh_(x[j]);
}

// ---------------------------------------------------------------------------------
// C (m x n, row stride ldc) = beta C + A (m x k, row stride lda) B (k x n, row stride ldb),
// all row-major; beta is 0 or 1.

template <typename T>
void gemm_loops(index_t m, index_t n, index_t k, const T* __restrict a, index_t lda, const T* __restrict b, index_t ldb,
                T beta, T* __restrict c, index_t ldc) {
    for (index_t row = 0; row < m; ++row) {
        T* __restrict c_row = c + row * ldc;
        if (beta == T(0)) {
            for (index_t j = 0; j < n; ++j) c_row[j] = T(0);
        }
        const T* a_row = a + row * lda;
        for (index_t p = 0; p < k; ++p) {
            const T scale = a_row[p];
            const T* __restrict b_row = b + p * ldb;
            for (index_t j = 0; j < n; ++j) c_row[j] += scale * b_row[j];
        }
    }
}

template <typename T>
void gemm(index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

// Row-major C = A B is column-major C^T = B^T A^T: BLAS sees B first, both untransposed.
template <>
void gemm<float>(index_t m, index_t n, index_t k, const float* a, index_t lda, const float* b, index_t ldb, float beta,
                 float* c, index_t ldc) {
    if (blas_sgemm == nullptr || m <= kFewRows || m * n * k <= kSmallProduct) {
        gemm_loops(m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    const int mm = static_cast<int>(n), nn = static_cast<int>(m), kk = static_cast<int>(k);
    const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
    const float one = 1.0f;
    blas_sgemm("N", "N", &mm, &nn, &kk, &one, b, &la, a, &lb, &beta, c, &lc);
}

template <>
void gemm<double>(index_t m, index_t n, index_t k, const double* a, index_t lda, const double* b, index_t ldb,
                  double beta, double* c, index_t ldc) {
    if (blas_dgemm == nullptr || m <= kFewRows || m * n * k <= kSmallProduct) {
        gemm_loops(m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    const int mm = static_cast<int>(n), nn = static_cast<int>(m), kk = static_cast<int>(k);
    const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
    const double one = 1.0;
    blas_dgemm("N", "N", &mm, &nn, &kk, &one, b, &la, a, &lb, &beta, c, &lc);
}

// ---------------------------------------------------------------------------------
// Step bookkeeping.

struct Steps {
    std::vector<index_t> offsets;  // first packed row of each step
    index_t count;
    bool reverse;

    Steps(index_t steps, const index_t* batch_sizes, bool reverse_) : offsets(steps), count(steps), reverse(reverse_) {
        index_t start = 0;
        for (index_t t = 0; t < steps; ++t) {
            offsets[t] = start;
            start += batch_sizes[t];
        }
    }
    // The time step processed at position `position` of the forward pass.
    index_t at(index_t position) const { return reverse ? count - 1 - position : position; }
};

inline void copy_rows(const void* source, void* target, index_t elements, size_t element_size) {
    std::memcpy(target, source, static_cast<size_t>(elements) * element_size);
}

// ---------------------------------------------------------------------------------
// RNN: h_t = act(gates_t + h_{t-1} W_hh^T), gates holding x W_ih^T + b_ih + b_hh; the
// activated gates are the output.

template <typename T>
void rnn_forward(index_t steps, const index_t* batch_sizes, bool reverse, bool relu, index_t hidden, T* gates,
                 const T* w_hh_t, T* h_state, T* h_prev) {
    const Steps plan(steps, batch_sizes, reverse);
    for (index_t position = 0; position < steps; ++position) {
        const index_t t = plan.at(position), rows = batch_sizes[t];
        T* z = gates + plan.offsets[t] * hidden;
        if (h_prev != nullptr) copy_rows(h_state, h_prev + plan.offsets[t] * hidden, rows * hidden, sizeof(T));
        gemm<T>(rows, hidden, hidden, h_state, hidden, w_hh_t, hidden, T(1), z, hidden);
        const index_t count = rows * hidden;
        if (relu) {
            for (index_t j = 0; j < count; ++j) z[j] = z[j] > T(0) ? z[j] : (z[j] == z[j] ? T(0) : z[j]);
        } else {
            tanh_inplace(z, count);
        }
        copy_rows(z, h_state, count, sizeof(T));
    }
}

// dz_t = (dh_t) act'(z_t); dh_{t-1} = dz_t W_hh. ``dh_state`` holds dL/dh_n on entry
// and dL/dh_0 on return; ``grad_output`` may be null (no gradient reached the output).
template <typename T>
void rnn_backward(index_t steps, const index_t* batch_sizes, bool reverse, bool relu, index_t hidden, const T* output,
                  const T* w_hh, const T* grad_output, T* dh_state, T* grad_gates) {
    const Steps plan(steps, batch_sizes, reverse);
    for (index_t position = steps - 1; position >= 0; --position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], count = rows * hidden;
        const index_t offset = plan.offsets[t] * hidden;
        const T* __restrict y = output + offset;
        T* __restrict dz = grad_gates + offset;
        const T* __restrict dh = dh_state;
        if (grad_output != nullptr) {
            const T* __restrict g = grad_output + offset;
            if (relu) {
                for (index_t j = 0; j < count; ++j) dz[j] = y[j] > T(0) ? dh[j] + g[j] : T(0);
            } else {
                for (index_t j = 0; j < count; ++j) dz[j] = (dh[j] + g[j]) * (T(1) - y[j] * y[j]);
            }
        } else if (relu) {
            for (index_t j = 0; j < count; ++j) dz[j] = y[j] > T(0) ? dh[j] : T(0);
        } else {
            for (index_t j = 0; j < count; ++j) dz[j] = dh[j] * (T(1) - y[j] * y[j]);
        }
        gemm<T>(rows, hidden, hidden, dz, hidden, w_hh, hidden, T(0), dh_state, hidden);
    }
}

// ---------------------------------------------------------------------------------
// LSTM: gates (i, f, g, o) = x W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T;
// c_t = f c_{t-1} + i g; h_t = o tanh(c_t). ``gates`` is activated in place.
// The saved buffers (tanh_cells, c_prev, h_prev) are null when no backward follows.

template <typename T>
void lstm_forward(index_t steps, const index_t* batch_sizes, bool reverse, index_t hidden, T* gates, const T* w_hh_t,
                  T* h_state, T* c_state, T* output, T* tanh_cells, T* c_prev, T* h_prev) {
    const Steps plan(steps, batch_sizes, reverse);
    const index_t width = 4 * hidden;
    std::vector<T> tanh_scratch(hidden);
    for (index_t position = 0; position < steps; ++position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], first = plan.offsets[t];
        T* z = gates + first * width;
        if (h_prev != nullptr) {
            copy_rows(h_state, h_prev + first * hidden, rows * hidden, sizeof(T));
            copy_rows(c_state, c_prev + first * hidden, rows * hidden, sizeof(T));
        }
        gemm<T>(rows, width, hidden, h_state, hidden, w_hh_t, width, T(1), z, width);
        for (index_t row = 0; row < rows; ++row) {
            T* __restrict zr = z + row * width;
            sigmoid_inplace(zr, 2 * hidden);  // i, f
            tanh_inplace(zr + 2 * hidden, hidden);  // g
            sigmoid_inplace(zr + 3 * hidden, hidden);  // o
            const T* __restrict i = zr;
            const T* __restrict f = zr + hidden;
            const T* __restrict g = zr + 2 * hidden;
            const T* __restrict o = zr + 3 * hidden;
            T* __restrict c = c_state + row * hidden;
            T* __restrict tc = tanh_cells != nullptr ? tanh_cells + (first + row) * hidden : tanh_scratch.data();
            for (index_t j = 0; j < hidden; ++j) {
                c[j] = f[j] * c[j] + i[j] * g[j];
                tc[j] = c[j];
            }
            tanh_inplace(tc, hidden);
            T* __restrict h = h_state + row * hidden;
            T* __restrict out = output + (first + row) * hidden;
            for (index_t j = 0; j < hidden; ++j) {
                h[j] = o[j] * tc[j];
                out[j] = h[j];
            }
        }
    }
}

// On entry dh_state/dc_state hold dL/dh_n, dL/dc_n; on return dL/dh_0, dL/dc_0.
// grad_gates receives dL/d(pre-activation gates), i f g o, for every packed row.
template <typename T>
void lstm_backward(index_t steps, const index_t* batch_sizes, bool reverse, index_t hidden, const T* gates,
                   const T* tanh_cells, const T* c_prev, const T* w_hh, const T* grad_output, T* dh_state, T* dc_state,
                   T* grad_gates) {
    const Steps plan(steps, batch_sizes, reverse);
    const index_t width = 4 * hidden;
    for (index_t position = steps - 1; position >= 0; --position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], first = plan.offsets[t];
        for (index_t row = 0; row < rows; ++row) {
            const index_t packed = first + row;
            const T* __restrict zr = gates + packed * width;
            const T* __restrict i = zr;
            const T* __restrict f = zr + hidden;
            const T* __restrict g = zr + 2 * hidden;
            const T* __restrict o = zr + 3 * hidden;
            const T* __restrict tc = tanh_cells + packed * hidden;
            const T* __restrict cp = c_prev + packed * hidden;
            const T* __restrict dh_in = dh_state + row * hidden;
            const T* __restrict dout = grad_output != nullptr ? grad_output + packed * hidden : nullptr;
            T* __restrict dc = dc_state + row * hidden;
            T* __restrict dz = grad_gates + packed * width;
            for (index_t j = 0; j < hidden; ++j) {
                const T dh = dout != nullptr ? dh_in[j] + dout[j] : dh_in[j];
                const T dct = dc[j] + dh * o[j] * (T(1) - tc[j] * tc[j]);
                dz[j] = dct * g[j] * i[j] * (T(1) - i[j]);
                dz[hidden + j] = dct * cp[j] * f[j] * (T(1) - f[j]);
                dz[2 * hidden + j] = dct * i[j] * (T(1) - g[j] * g[j]);
                dz[3 * hidden + j] = dh * tc[j] * o[j] * (T(1) - o[j]);
                dc[j] = dct * f[j];
            }
        }
        gemm<T>(rows, hidden, width, grad_gates + first * width, width, w_hh, hidden, T(0), dh_state, hidden);
    }
}

// ---------------------------------------------------------------------------------
// GRU: with gh = h_{t-1} W_hh^T + b_hh and gi = x W_ih^T + b_ih (in ``gates``),
// r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r gh_n),
// h_t = n + z (h_{t-1} - n). ``gates`` becomes (r, z, n); hidden_n keeps gh_n.

template <typename T>
void gru_forward(index_t steps, const index_t* batch_sizes, bool reverse, index_t hidden, T* gates, const T* w_hh_t,
                 const T* b_hh, T* h_state, T* output, T* hidden_n, T* h_prev, T* scratch) {
    const Steps plan(steps, batch_sizes, reverse);
    const index_t width = 3 * hidden;
    for (index_t position = 0; position < steps; ++position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], first = plan.offsets[t];
        if (h_prev != nullptr) copy_rows(h_state, h_prev + first * hidden, rows * hidden, sizeof(T));
        for (index_t row = 0; row < rows; ++row) {
            T* __restrict s = scratch + row * width;
            if (b_hh != nullptr) {
                for (index_t j = 0; j < width; ++j) s[j] = b_hh[j];
            } else {
                for (index_t j = 0; j < width; ++j) s[j] = T(0);
            }
        }
        gemm<T>(rows, width, hidden, h_state, hidden, w_hh_t, width, T(1), scratch, width);
        for (index_t row = 0; row < rows; ++row) {
            const index_t packed = first + row;
            T* __restrict zr = gates + packed * width;
            const T* __restrict s = scratch + row * width;
            for (index_t j = 0; j < 2 * hidden; ++j) zr[j] += s[j];
            sigmoid_inplace(zr, 2 * hidden);  // r, z
            T* __restrict n = zr + 2 * hidden;
            const T* __restrict r = zr;
            const T* __restrict sn = s + 2 * hidden;
            for (index_t j = 0; j < hidden; ++j) n[j] += r[j] * sn[j];
            tanh_inplace(n, hidden);
            if (hidden_n != nullptr) copy_rows(sn, hidden_n + packed * hidden, hidden, sizeof(T));
            const T* __restrict z = zr + hidden;
            T* __restrict h = h_state + row * hidden;
            T* __restrict out = output + packed * hidden;
            for (index_t j = 0; j < hidden; ++j) {
                h[j] = n[j] + z[j] * (h[j] - n[j]);
                out[j] = h[j];
            }
        }
    }
}

// grad_gates: dL/d(gi) (r, z, n); grad_hidden: dL/d(gh) (r, z, n), whose column sums
// are b_hh's gradient and whose product with h_{t-1} is W_hh's.
template <typename T>
void gru_backward(index_t steps, const index_t* batch_sizes, bool reverse, index_t hidden, const T* gates,
                  const T* hidden_n, const T* h_prev, const T* w_hh, const T* grad_output, T* dh_state, T* grad_gates,
                  T* grad_hidden) {
    const Steps plan(steps, batch_sizes, reverse);
    const index_t width = 3 * hidden;
    for (index_t position = steps - 1; position >= 0; --position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], first = plan.offsets[t];
        for (index_t row = 0; row < rows; ++row) {
            const index_t packed = first + row;
            const T* __restrict zr = gates + packed * width;
            const T* __restrict r = zr;
            const T* __restrict z = zr + hidden;
            const T* __restrict n = zr + 2 * hidden;
            const T* __restrict sn = hidden_n + packed * hidden;
            const T* __restrict hp = h_prev + packed * hidden;
            const T* __restrict dout = grad_output != nullptr ? grad_output + packed * hidden : nullptr;
            T* __restrict dh_io = dh_state + row * hidden;
            T* __restrict dgi = grad_gates + packed * width;
            T* __restrict dgh = grad_hidden + packed * width;
            for (index_t j = 0; j < hidden; ++j) {
                const T dh = dout != nullptr ? dh_io[j] + dout[j] : dh_io[j];
                const T dn = dh * (T(1) - z[j]) * (T(1) - n[j] * n[j]);
                const T dz = dh * (hp[j] - n[j]) * z[j] * (T(1) - z[j]);
                const T dr = dn * sn[j] * r[j] * (T(1) - r[j]);
                dgi[j] = dr;
                dgi[hidden + j] = dz;
                dgi[2 * hidden + j] = dn;
                dgh[j] = dr;
                dgh[hidden + j] = dz;
                dgh[2 * hidden + j] = dn * r[j];
                dh_io[j] = dh * z[j];
            }
        }
        gemm<T>(rows, hidden, width, grad_hidden + first * width, width, w_hh, hidden, T(1), dh_state, hidden);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------
// The C ABI: one entry per (family, direction of time, dtype). Pointers are to
// contiguous row-major buffers; null where documented above.

#define NATIVE_EXPORT extern "C" __attribute__((visibility("default")))

NATIVE_EXPORT void native_set_blas(void* sgemm, void* dgemm) {
    blas_sgemm = reinterpret_cast<sgemm_fn>(sgemm);
    blas_dgemm = reinterpret_cast<dgemm_fn>(dgemm);
}

#define NATIVE_ENTRIES(T, SUFFIX)                                                                                   \
    NATIVE_EXPORT void rnn_forward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, int relu,          \
                                            index_t hidden, T* gates, const T* w_hh_t, T* h_state, T* h_prev) {      \
        rnn_forward<T>(steps, batch_sizes, reverse != 0, relu != 0, hidden, gates, w_hh_t, h_state, h_prev);           \
    }                                                                                                                \
    NATIVE_EXPORT void rnn_backward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, int relu,         \
                                             index_t hidden, const T* output, const T* w_hh, const T* grad_output,   \
                                             T* dh_state, T* grad_gates) {                                           \
        rnn_backward<T>(steps, batch_sizes, reverse != 0, relu != 0, hidden, output, w_hh, grad_output, dh_state,      \
                        grad_gates);                                                                                 \
    }                                                                                                                \
    NATIVE_EXPORT void lstm_forward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, index_t hidden,  \
                                             T* gates, const T* w_hh_t, T* h_state, T* c_state, T* output,          \
                                             T* tanh_cells, T* c_prev, T* h_prev) {                                 \
        lstm_forward<T>(steps, batch_sizes, reverse != 0, hidden, gates, w_hh_t, h_state, c_state, output,           \
                        tanh_cells, c_prev, h_prev);                                                                 \
    }                                                                                                                \
    NATIVE_EXPORT void lstm_backward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, index_t hidden, \
                                              const T* gates, const T* tanh_cells, const T* c_prev, const T* w_hh,   \
                                              const T* grad_output, T* dh_state, T* dc_state, T* grad_gates) {       \
        lstm_backward<T>(steps, batch_sizes, reverse != 0, hidden, gates, tanh_cells, c_prev, w_hh, grad_output,     \
                         dh_state, dc_state, grad_gates);                                                            \
    }                                                                                                                \
    NATIVE_EXPORT void gru_forward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, index_t hidden,   \
                                            T* gates, const T* w_hh_t, const T* b_hh, T* h_state, T* output,        \
                                            T* hidden_n, T* h_prev, T* scratch) {                                    \
        gru_forward<T>(steps, batch_sizes, reverse != 0, hidden, gates, w_hh_t, b_hh, h_state, output, hidden_n,     \
                       h_prev, scratch);                                                                             \
    }                                                                                                                \
    NATIVE_EXPORT void gru_backward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, index_t hidden,  \
                                             const T* gates, const T* hidden_n, const T* h_prev, const T* w_hh,      \
                                             const T* grad_output, T* dh_state, T* grad_gates, T* grad_hidden) {    \
        gru_backward<T>(steps, batch_sizes, reverse != 0, hidden, gates, hidden_n, h_prev, w_hh, grad_output,        \
                        dh_state, grad_gates, grad_hidden);                                                          \
    }

NATIVE_ENTRIES(float, f32)
NATIVE_ENTRIES(double, f64)
