// The recurrences of `native` (impls/native.py): one layer in one direction,
// forward and backward through time, for RNN (tanh, relu), LSTM and GRU, in float32
// and float64.
//
// Plain C++ behind a C ABI, called through ctypes with raw pointers: no torch
// headers, so the one-time build takes seconds, and a call costs a few
// microseconds, not a dispatcher round trip per step. A forward call computes per
// step one product, bias + x_t W_ih^T + h_{t-1} W_hh^T (for fewer rows than a
// register block the input projection for the whole sequence first, see
// `StepGates`), then every gate's elementwise work in one pass over the step's
// gate rows; a backward call, per step, the gate gradients and the product that
// carries them to the previous step. Python does the weight and input gradients,
// each one product over all steps.
//
// Layout: torch's packed form. A layer's rows are time step after time step; step t
// has batch_sizes[t] rows, a prefix of the batch. The running state lives in a
// (batch, width) buffer whose first batch_sizes[t] rows step t reads and rewrites,
// in both directions, so that after the last step it holds h_n (and c_n), and after
// the backward it holds the gradient of h_0 (and c_0). Gate blocks are in torch's
// order: LSTM i, f, g, o; GRU r, z, n.
//
// Vectorisation: the build is per instruction set (impls/native.py picks the flags
// from torch's own CPU capability). The products use GCC's generic vectors sized to
// that instruction set's registers; the elementwise loops are written so that the
// auto-vectoriser takes them: float32's sigmoid and tanh are branch-free
// polynomials here; float64 calls the C library's exp and tanh (it is the fuzzer's
// dtype, not the benchmarks', so accuracy comes first).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace {

using index_t = int64_t;

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
// Round to nearest by adding and subtracting 1.5 * 2^23: no floor(), which the
// baseline x86-64 instruction set has no instruction for (a libm call per element).
inline float round_small(float x) { return (x + 12582912.0f) - 12582912.0f; }

inline float exp_reduced(float x) {
    const float n = round_small(x * 1.44269504088896341f);
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
    const float n = round_small(x * 1.44269504088896341f);
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
// Products with a weight matrix W, all row-major: C (m x n, row stride ldc) =
// beta C + A (m x k, row stride lda) op(W), op(W) = W^T for W stored (n x k) (the
// forward's x W_ih^T and h W_hh^T) or W for W stored (k x n) (the backward's dz W_hh);
// beta is 0 or 1. A `Weight` is packed once per layer call and used for every step.

// One register of T as GCC's generic vectors, sized by the instruction set this
// build targets (512, 256 or 128 bits), so the compiler maps it to one register.
#if defined(__AVX512F__)
constexpr size_t kVectorBytes = 64;
#elif defined(__AVX__)
constexpr size_t kVectorBytes = 32;
#else
constexpr size_t kVectorBytes = 16;
#endif
typedef float FloatVector __attribute__((vector_size(kVectorBytes), aligned(4)));
typedef double DoubleVector __attribute__((vector_size(kVectorBytes), aligned(8)));
template <typename T>
struct VectorOf;
template <>
struct VectorOf<float> {
    using type = FloatVector;
};
template <>
struct VectorOf<double> {
    using type = DoubleVector;
};
template <typename T>
using Vector = typename VectorOf<T>::type;
template <typename T>
constexpr index_t kLanes = kVectorBytes / sizeof(T);

// Unaligned: the vector types above are declared with their element's alignment.
template <typename T>
__attribute__((always_inline)) inline Vector<T> load(const T* p) {
    return *reinterpret_cast<const Vector<T>*>(p);
}

template <typename T>
__attribute__((always_inline)) inline void store(T* p, Vector<T> v) {
    *reinterpret_cast<Vector<T>*>(p) = v;
}

// W is packed once per layer call into panels of kPanel columns of op(W) (k rows
// each, zero-padded past n): a panel is read with two vector loads per k, and the
// micro-kernel below keeps R rows x kPanel columns of C in registers for the whole
// k loop, each panel element loaded once per R rows.
template <typename T>
constexpr index_t kPanel = 2 * kLanes<T>;
constexpr int kRowBlock = kVectorBytes == 64 ? 8 : 4;  // 2R accumulators + 3 fit the register file
constexpr index_t kRowChunk = 256; // rows of A kept in cache while every panel passes over them

// One operand of a product: rows of A (row stride lda) and a packed weight.
template <typename T>
struct Operand {
    const T* a;
    index_t lda;
    const T* packed;  // panel 0; panel j starts j * k * kPanel further
    index_t k;
};

// C[R rows, P panels] = init + sum over the operands of A op(W). ``init`` is a bias
// row (padded to whole panels), or C itself (beta = 1), or zero. ``valid`` columns
// of the P panels exist in C (a partial last panel goes through ``edge``).
template <typename T, int R, int P>
__attribute__((always_inline)) inline void micro_kernel(const Operand<T>* operands, int count, index_t panel,
                                                        const T* bias, T beta, T* __restrict c, index_t ldc,
                                                        index_t valid) {
    constexpr index_t lanes = kLanes<T>;
    constexpr index_t span = P * kPanel<T>;
    Vector<T> acc[R][2 * P];
    T edge[R][span];
    const bool full = valid >= span;
    const bool from_c = bias == nullptr && beta != T(0);
    if (!full && from_c) {
        for (int r = 0; r < R; ++r)
            for (index_t j = 0; j < span; ++j) edge[r][j] = j < valid ? c[r * ldc + j] : T(0);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int v = 0; v < 2 * P; ++v) {
            if (bias != nullptr) {
                acc[r][v] = load(bias + panel * kPanel<T> + v * lanes);
            } else if (from_c) {
                acc[r][v] = load((full ? c + r * ldc : edge[r]) + v * lanes);
            } else {
                acc[r][v] = Vector<T>{};
            }
        }
    }
    for (int operand = 0; operand < count; ++operand) {
        const Operand<T>& o = operands[operand];
        const T* __restrict a = o.a;
        const T* __restrict packed = o.packed + panel * o.k * kPanel<T>;
        for (index_t p = 0; p < o.k; ++p) {
            Vector<T> b[2 * P];
#pragma GCC unroll 8
            for (int q = 0; q < P; ++q) {
                b[2 * q] = load(packed + q * o.k * kPanel<T> + p * kPanel<T>);
                b[2 * q + 1] = load(packed + q * o.k * kPanel<T> + p * kPanel<T> + lanes);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const T scale = a[r * o.lda + p];
#pragma GCC unroll 8
                for (int v = 0; v < 2 * P; ++v) acc[r][v] += scale * b[v];
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int v = 0; v < 2 * P; ++v) store((full ? c + r * ldc : edge[r]) + v * lanes, acc[r][v]);
    }
    if (!full) {
        for (int r = 0; r < R; ++r)
            for (index_t j = 0; j < valid; ++j) c[r * ldc + j] = edge[r][j];
    }
}

// C (m x n) = init + sum of A op(W) over one or two operands, whose weights have n
// columns in ``panels`` panels; row blocks of kRowBlock rows, single rows four panels
// at a time (a matrix-vector product needs the independent accumulators too).
template <typename T>
void product(index_t m, index_t n, index_t panels, const Operand<T>* operands, int count, const T* bias, T beta, T* c,
             index_t ldc) {
    for (index_t chunk = 0; chunk < m; chunk += kRowChunk) {
        const index_t end = chunk + kRowChunk < m ? chunk + kRowChunk : m;
        Operand<T> moved[2];
        index_t row = chunk;
        for (; row + kRowBlock <= end; row += kRowBlock) {
            for (int i = 0; i < count; ++i) moved[i] = {operands[i].a + row * operands[i].lda, operands[i].lda, operands[i].packed, operands[i].k};
            for (index_t panel = 0; panel < panels; ++panel)
                micro_kernel<T, kRowBlock, 1>(moved, count, panel, bias, beta, c + row * ldc + panel * kPanel<T>, ldc,
                                              n - panel * kPanel<T>);
        }
        for (; row < end; ++row) {
            for (int i = 0; i < count; ++i) moved[i] = {operands[i].a + row * operands[i].lda, operands[i].lda, operands[i].packed, operands[i].k};
            index_t panel = 0;
            for (; panel + 4 <= panels; panel += 4)
                micro_kernel<T, 1, 4>(moved, count, panel, bias, beta, c + row * ldc + panel * kPanel<T>, ldc,
                                      n - panel * kPanel<T>);
            for (; panel < panels; ++panel)
                micro_kernel<T, 1, 1>(moved, count, panel, bias, beta, c + row * ldc + panel * kPanel<T>, ldc,
                                      n - panel * kPanel<T>);
        }
    }
}

// A buffer of T left uninitialised (std::vector would zero it first: a pass over
// every weight on each call, which at the latency-bound shape is not small).
template <typename T>
class Buffer {
  public:
    explicit Buffer(index_t size = 0) : data_(size > 0 ? new T[static_cast<size_t>(size)] : nullptr) {}
    T* data() const { return data_.get(); }

  private:
    std::unique_ptr<T[]> data_;
};

template <typename T>
class Weight {
  public:
    // op(W) = W^T for W stored (n x k) (``transposed``), else W stored (k x n).
    Weight(const T* w, index_t n, index_t k, bool transposed)
        : n_(n), k_(k), panels_((n + kPanel<T> - 1) / kPanel<T>), packed_(panels_ * k * kPanel<T>) {
        for (index_t panel = 0; panel < panels_; ++panel) {
            T* target = packed_.data() + panel * k * kPanel<T>;
            const index_t first = panel * kPanel<T>;
            const index_t width = n - first < kPanel<T> ? n - first : kPanel<T>;
            if (transposed) {
                for (index_t j = 0; j < width; ++j)
                    for (index_t p = 0; p < k; ++p) target[p * kPanel<T> + j] = w[(first + j) * k + p];
            } else {
                for (index_t p = 0; p < k; ++p)
                    for (index_t j = 0; j < width; ++j) target[p * kPanel<T> + j] = w[p * n + first + j];
            }
            for (index_t p = 0; p < k; ++p)
                for (index_t j = width; j < kPanel<T>; ++j) target[p * kPanel<T> + j] = T(0);
        }
    }

    Operand<T> with(const T* a, index_t lda) const { return {a, lda, packed_.data(), k_}; }
    index_t columns() const { return n_; }
    index_t panels() const { return panels_; }

    // C (m x n) = beta C + A op(W).
    void multiply(index_t m, const T* a, index_t lda, T beta, T* c, index_t ldc) const {
        const Operand<T> operand = with(a, lda);
        product<T>(m, n_, panels_, &operand, 1, nullptr, beta, c, ldc);
    }

  private:
    index_t n_, k_, panels_;
    Buffer<T> packed_;
};

// A bias row b_1 + b_2 (each optional), zero-padded to whole panels.
template <typename T>
std::vector<T> padded_bias(index_t n, const T* b_1, const T* b_2) {
    std::vector<T> bias(static_cast<size_t>((n + kPanel<T> - 1) / kPanel<T> * kPanel<T>), T(0));
    for (index_t j = 0; j < n; ++j) bias[j] = (b_1 != nullptr ? b_1[j] : T(0)) + (b_2 != nullptr ? b_2[j] : T(0));
    return bias;
}

// A forward step's gates: x_t W_ih^T + b_1 + b_2 + h_{t-1} W_hh^T (each bias optional;
// without W_hh, the projection alone). With a batch of at least one row block all
// of it is one fused product per step, into rows that stay in cache, and without a
// backward to feed no sequence-long buffer is written at all. With fewer rows a
// per-step input projection would be single-row products: then it is one product
// over the whole sequence first (``hoisted``), and each step adds h_{t-1} W_hh^T.
template <typename T>
class StepGates {
  public:
    StepGates(index_t total, index_t batch, index_t width, index_t input_size, const T* x, const T* w_ih, const T* b_1,
              const T* b_2, const T* w_hh, index_t hidden, T* gates)
        : width_(width), input_size_(input_size), x_(x), hoisted_(batch < kRowBlock),
          input_(w_ih, width, input_size, true), bias_(padded_bias(width, b_1, b_2)) {
        if (w_hh != nullptr) recurrent_.emplace_back(w_hh, width, hidden, true);
        if (gates == nullptr) scratch_ = Buffer<T>((hoisted_ ? total : batch) * width);
        gates_ = gates != nullptr ? gates : scratch_.data();
        reuse_rows_ = gates == nullptr && !hoisted_;
        if (hoisted_) {
            const Operand<T> operand = input_.with(x_, input_size_);
            product<T>(total, width_, input_.panels(), &operand, 1, bias_.data(), T(0), gates_, width_);
        }
    }

    // The gates of the step whose rows start at packed row ``first``, from h (rows of
    // ``hidden``; ignored without W_hh).
    T* step(index_t first, index_t rows, const T* h, index_t hidden) const {
        T* z = reuse_rows_ ? gates_ : gates_ + first * width_;
        if (hoisted_) {
            if (!recurrent_.empty()) recurrent_[0].multiply(rows, h, hidden, T(1), z, width_);
            return z;
        }
        Operand<T> operands[2] = {input_.with(x_ + first * input_size_, input_size_), {}};
        int count = 1;
        if (!recurrent_.empty()) operands[count++] = recurrent_[0].with(h, hidden);
        product<T>(rows, width_, input_.panels(), operands, count, bias_.data(), T(0), z, width_);
        return z;
    }

  private:
    index_t width_, input_size_;
    const T* x_;
    bool hoisted_, reuse_rows_ = false;
    Weight<T> input_;
    std::vector<Weight<T>> recurrent_;
    std::vector<T> bias_;
    Buffer<T> scratch_;
    T* gates_;
};

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
// The layers. Every forward takes the layer's input x (rows x input_size) and torch's
// weights as they are (W_ih (G x input_size), W_hh (G x hidden), biases of G or
// null), writes the projection x W_ih^T + biases into ``gates`` for the whole
// sequence first, then runs the steps. ``h_state`` (and ``c_state``) hold h_0 (c_0)
// on entry and h_n (c_n) on return. The buffers only a backward reads (h_prev, ...)
// are null when none follows.

// RNN: h_t = act(x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T); the activated gates are
// the output.
template <typename T>
void rnn_forward(index_t steps, const index_t* batch_sizes, bool reverse, bool relu, index_t input_size,
                 index_t hidden, const T* x, const T* w_ih, const T* b_ih, const T* b_hh, const T* w_hh, T* gates,
                 const T* h0, T* h_state, T* h_prev) {
    const Steps plan(steps, batch_sizes, reverse);
    copy_rows(h0, h_state, batch_sizes[0] * hidden, sizeof(T));
    const index_t total = plan.offsets[steps - 1] + batch_sizes[steps - 1];
    const StepGates<T> step_gates(total, batch_sizes[0], hidden, input_size, x, w_ih, b_ih, b_hh, w_hh, hidden, gates);
    for (index_t position = 0; position < steps; ++position) {
        const index_t t = plan.at(position), rows = batch_sizes[t];
        if (h_prev != nullptr) copy_rows(h_state, h_prev + plan.offsets[t] * hidden, rows * hidden, sizeof(T));
        T* z = step_gates.step(plan.offsets[t], rows, h_state, hidden);
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
    const Weight<T> recurrent(w_hh, hidden, hidden, false);
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
        recurrent.multiply(rows, dz, hidden, T(0), dh_state, hidden);
    }
}

// LSTM: gates (i, f, g, o) = x W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T;
// c_t = f c_{t-1} + i g; h_t = o tanh(c_t), or with projections (``w_hr``, proj x
// hidden) h_t = (o tanh(c_t)) W_hr^T, h being ``out_width`` = proj wide. ``gates`` is
// left activated (the backward reads it), with tanh(c_t), c_{t-1} and h_{t-1} when
// those buffers are given.
template <typename T>
void lstm_forward(index_t steps, const index_t* batch_sizes, bool reverse, index_t input_size, index_t hidden,
                  index_t out_width, const T* x, const T* w_ih, const T* b_ih, const T* b_hh, const T* w_hh,
                  const T* w_hr, T* gates, const T* h0, const T* c0, T* h_state, T* c_state, T* output,
                  T* tanh_cells, T* c_prev, T* h_prev) {
    const Steps plan(steps, batch_sizes, reverse);
    copy_rows(h0, h_state, batch_sizes[0] * out_width, sizeof(T));
    copy_rows(c0, c_state, batch_sizes[0] * hidden, sizeof(T));
    const index_t width = 4 * hidden;
    const index_t total = plan.offsets[steps - 1] + batch_sizes[steps - 1];
    const StepGates<T> step_gates(total, batch_sizes[0], width, input_size, x, w_ih, b_ih, b_hh, w_hh, out_width,
                                  gates);
    std::vector<Weight<T>> projection;
    if (w_hr != nullptr) projection.emplace_back(w_hr, out_width, hidden, true);
    // o tanh(c) of the step's rows, before the projection.
    std::vector<T> unprojected(static_cast<size_t>(w_hr != nullptr ? batch_sizes[0] * hidden : 0));
    std::vector<T> tanh_scratch(hidden);
    for (index_t position = 0; position < steps; ++position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], first = plan.offsets[t];
        if (h_prev != nullptr) {
            copy_rows(h_state, h_prev + first * out_width, rows * out_width, sizeof(T));
            copy_rows(c_state, c_prev + first * hidden, rows * hidden, sizeof(T));
        }
        T* z = step_gates.step(first, rows, h_state, out_width);
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
            T* __restrict h = w_hr != nullptr ? unprojected.data() + row * hidden : h_state + row * hidden;
            for (index_t j = 0; j < hidden; ++j) h[j] = o[j] * tc[j];
            if (w_hr == nullptr) copy_rows(h, output + (first + row) * out_width, hidden, sizeof(T));
        }
        if (w_hr != nullptr) {
            projection[0].multiply(rows, unprojected.data(), hidden, T(0), h_state, out_width);
            copy_rows(h_state, output + first * out_width, rows * out_width, sizeof(T));
        }
    }
}

// On entry dh_state/dc_state hold dL/dh_n, dL/dc_n; on return dL/dh_0, dL/dc_0.
// grad_gates receives dL/d(pre-activation gates), i f g o, for every packed row; with
// projections, grad_h the whole dL/dh_t of every row (W_hr's gradient is its product
// with o tanh(c_t)).
template <typename T>
void lstm_backward(index_t steps, const index_t* batch_sizes, bool reverse, index_t hidden, index_t out_width,
                   const T* gates, const T* tanh_cells, const T* c_prev, const T* w_hh, const T* w_hr,
                   const T* grad_output, T* dh_state, T* dc_state, T* grad_gates, T* grad_h) {
    const Steps plan(steps, batch_sizes, reverse);
    const index_t width = 4 * hidden;
    const Weight<T> recurrent(w_hh, out_width, width, false);
    std::vector<Weight<T>> projection;
    if (w_hr != nullptr) projection.emplace_back(w_hr, hidden, out_width, false);
    std::vector<T> unprojected(static_cast<size_t>(w_hr != nullptr ? batch_sizes[0] * hidden : 0));
    for (index_t position = steps - 1; position >= 0; --position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], first = plan.offsets[t];
        if (w_hr != nullptr) {
            // dL/dh_t whole, then through W_hr to o tanh(c_t).
            T* __restrict dh = grad_h + first * out_width;
            const index_t count = rows * out_width;
            for (index_t j = 0; j < count; ++j)
                dh[j] = grad_output != nullptr ? dh_state[j] + grad_output[first * out_width + j] : dh_state[j];
            projection[0].multiply(rows, dh, out_width, T(0), unprojected.data(), hidden);
        }
        for (index_t row = 0; row < rows; ++row) {
            const index_t packed = first + row;
            const T* __restrict zr = gates + packed * width;
            const T* __restrict i = zr;
            const T* __restrict f = zr + hidden;
            const T* __restrict g = zr + 2 * hidden;
            const T* __restrict o = zr + 3 * hidden;
            const T* __restrict tc = tanh_cells + packed * hidden;
            const T* __restrict cp = c_prev + packed * hidden;
            const bool direct = w_hr == nullptr;
            const T* __restrict dh_in = direct ? dh_state + row * hidden : unprojected.data() + row * hidden;
            const T* __restrict dout = direct && grad_output != nullptr ? grad_output + packed * hidden : nullptr;
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
        recurrent.multiply(rows, grad_gates + first * width, width, T(0), dh_state, out_width);
    }
}

// GRU: with gh = h_{t-1} W_hh^T + b_hh and gi = x W_ih^T + b_ih (in ``gates``),
// r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r gh_n),
// h_t = n + z (h_{t-1} - n). ``gates`` becomes (r, z, n); hidden_n keeps gh_n.
template <typename T>
void gru_forward(index_t steps, const index_t* batch_sizes, bool reverse, index_t input_size, index_t hidden,
                 const T* x, const T* w_ih, const T* b_ih, const T* b_hh, const T* w_hh, T* gates, const T* h0,
                 T* h_state, T* output, T* hidden_n, T* h_prev) {
    const Steps plan(steps, batch_sizes, reverse);
    copy_rows(h0, h_state, batch_sizes[0] * hidden, sizeof(T));
    const index_t width = 3 * hidden;
    const index_t total = plan.offsets[steps - 1] + batch_sizes[steps - 1];
    const StepGates<T> input_gates(total, batch_sizes[0], width, input_size, x, w_ih, b_ih,
                                   static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), hidden, gates);
    const Weight<T> recurrent(w_hh, width, hidden, true);
    const std::vector<T> hidden_bias = padded_bias(width, b_hh, static_cast<const T*>(nullptr));
    std::vector<T> scratch(static_cast<size_t>(batch_sizes[0] * width));
    for (index_t position = 0; position < steps; ++position) {
        const index_t t = plan.at(position), rows = batch_sizes[t], first = plan.offsets[t];
        if (h_prev != nullptr) copy_rows(h_state, h_prev + first * hidden, rows * hidden, sizeof(T));
        const Operand<T> operand = recurrent.with(h_state, hidden);
        product<T>(rows, width, recurrent.panels(), &operand, 1, hidden_bias.data(), T(0), scratch.data(), width);
        T* step_gates = input_gates.step(first, rows, nullptr, hidden);
        for (index_t row = 0; row < rows; ++row) {
            const index_t packed = first + row;
            T* __restrict zr = step_gates + row * width;
            const T* __restrict s = scratch.data() + row * width;
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
    const Weight<T> recurrent(w_hh, hidden, width, false);
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
        recurrent.multiply(rows, grad_hidden + first * width, width, T(1), dh_state, hidden);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------
// The C ABI: one entry per (family, pass, dtype). Pointers are to contiguous
// row-major buffers; null where documented above.

#define NATIVE_EXPORT extern "C" __attribute__((visibility("default")))

#define NATIVE_ENTRIES(T, SUFFIX)                                                                                    \
    NATIVE_EXPORT void rnn_forward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, int relu,           \
                                            index_t input_size, index_t hidden, const T* x, const T* w_ih,            \
                                            const T* b_ih, const T* b_hh, const T* w_hh, T* gates, const T* h0,       \
                                            T* h_state, T* h_prev) {                                                  \
        rnn_forward<T>(steps, batch_sizes, reverse != 0, relu != 0, input_size, hidden, x, w_ih, b_ih, b_hh, w_hh,     \
                       gates, h0, h_state, h_prev);                                                                   \
    }                                                                                                                 \
    NATIVE_EXPORT void rnn_backward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, int relu,          \
                                             index_t hidden, const T* output, const T* w_hh, const T* grad_output,    \
                                             T* dh_state, T* grad_gates) {                                            \
        rnn_backward<T>(steps, batch_sizes, reverse != 0, relu != 0, hidden, output, w_hh, grad_output, dh_state,       \
                        grad_gates);                                                                                  \
    }                                                                                                                 \
    NATIVE_EXPORT void lstm_forward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse,                   \
                                             index_t input_size, index_t hidden, index_t out_width, const T* x,       \
                                             const T* w_ih, const T* b_ih, const T* b_hh, const T* w_hh,              \
                                             const T* w_hr, T* gates, const T* h0, const T* c0, T* h_state,           \
                                             T* c_state, T* output, T* tanh_cells, T* c_prev, T* h_prev) {            \
        lstm_forward<T>(steps, batch_sizes, reverse != 0, input_size, hidden, out_width, x, w_ih, b_ih, b_hh, w_hh,    \
                        w_hr, gates, h0, c0, h_state, c_state, output, tanh_cells, c_prev, h_prev);                   \
    }                                                                                                                 \
    NATIVE_EXPORT void lstm_backward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, index_t hidden,  \
                                              index_t out_width, const T* gates, const T* tanh_cells,                 \
                                              const T* c_prev, const T* w_hh, const T* w_hr, const T* grad_output,    \
                                              T* dh_state, T* dc_state, T* grad_gates, T* grad_h) {                   \
        lstm_backward<T>(steps, batch_sizes, reverse != 0, hidden, out_width, gates, tanh_cells, c_prev, w_hh, w_hr,  \
                         grad_output, dh_state, dc_state, grad_gates, grad_h);                                        \
    }                                                                                                                 \
    NATIVE_EXPORT void gru_forward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse,                    \
                                            index_t input_size, index_t hidden, const T* x, const T* w_ih,            \
                                            const T* b_ih, const T* b_hh, const T* w_hh, T* gates, const T* h0,       \
                                            T* h_state, T* output, T* hidden_n, T* h_prev) {                          \
        gru_forward<T>(steps, batch_sizes, reverse != 0, input_size, hidden, x, w_ih, b_ih, b_hh, w_hh, gates, h0,     \
                       h_state, output, hidden_n, h_prev);                                                            \
    }                                                                                                                 \
    NATIVE_EXPORT void gru_backward_##SUFFIX(index_t steps, const index_t* batch_sizes, int reverse, index_t hidden,   \
                                             const T* gates, const T* hidden_n, const T* h_prev, const T* w_hh,       \
                                             const T* grad_output, T* dh_state, T* grad_gates, T* grad_hidden) {     \
        gru_backward<T>(steps, batch_sizes, reverse != 0, hidden, gates, hidden_n, h_prev, w_hh, grad_output,         \
                        dh_state, grad_gates, grad_hidden);                                                           \
    }

NATIVE_ENTRIES(float, f32)
NATIVE_ENTRIES(double, f64)
