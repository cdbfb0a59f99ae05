// Torch bindings of the pnpfast CUDA kernels: the operator library pnpfast_C.
//
//   torch.ops.pnpfast_C.fft_prox_out(v, kty, k2, gamma, out)   (csrc/fft_prox.cu)
//   torch.ops.pnpfast_C.fft_grad_out(v, kty, k2, s, t, out)    (csrc/fft_grad.cu)
//   torch.ops.pnpfast_C.sr_prox_out(v, kty, k, k2_mean, gamma, factor, out)
//                                                                (csrc/sr_prox.cu)
//   torch.ops.pnpfast_C.pnp_update_out(f, z, x, xprev, coef, out, partial)
//                                                                (csrc/pnp_update.cu)
//   torch.ops.pnpfast_C.constrained_step_out(denoised, y, h, lifted, mask, factor, projected,
//                                            out, partial)       (csrc/constrained_step.cu)
//   torch.ops.pnpfast_C.constrained_step_noise_(out, sigma, c, seed)
//                                                                (csrc/constrained_step.cu)
//   torch.ops.pnpfast_C.power_step_out(w, u, state, tol, gram, out, state_next, partial)
//                                                                (csrc/power_step.cu)
//
// v, kty, out are the [B, C, H, Wr, 2] float views (torch.view_as_real) of rfft2 spectra, k2 is
// [1 or B, 1, H, Wr], gamma / s / t are [B]; all CUDA tensors on one device, one dtype (float32
// or float64), contiguous. `out` is written and must not overlap any input. The ops are built
// for pnpfast/ops/fft_prox.py and pnpfast/ops/fft_grad.py, which validate the complex inputs
// first; the checks here guard direct calls.
//
// sr_prox_out: v, kty, out [B, C, H, W, 2] float views of full fft2 spectra, k [Bk, 1, H, W, 2]
// (the kernel's spectrum K^) and k2_mean [Bk, 1, H / factor, W / factor] with Bk in {1, B},
// gamma [B], factor in {1, 2, 3, 4} dividing H and W; same device, dtype, contiguity and overlap
// rules as above. Built for pnpfast/ops/sr_prox.py.
//
// pnp_update_out: f, z, out [B, C, H, W], x and xprev [B, C, H, W] or None, coef [B, 4],
// partial [B, P, 3] with P >= 1 partial-sum slots per image (the caller sums partial over
// dim 1); CUDA tensors on one device, one dtype (float32 or float64), contiguous. out and
// partial are written and must not overlap any input or each other. Built for
// pnpfast/ops/pnp_update.py.
//
// constrained_step_out (pass 1 of the implicit-prior sampler's step): denoised, y, out
// [B, C, H, W], lifted [B, C, H, W] or None, h [B], partial [B, P] with P >= 1 slots per image;
// with lifted, exactly one P x_hat form: mask [Bm, 1, H, W] (Bm divides B), factor in {2, 4, 8}
// (dividing H and W; 0 = none) or projected [B, C, H, W]; without lifted, none of them. Writes
// out = y + h d and partial (summed over dim 1: ||d_b||^2). constrained_step_noise_ (pass 2):
// out [B, C, H, W] += c sigma z in place, sigma and c [B], seed in [0, 2**63). CUDA tensors on
// one device, one dtype (float32 or float64), contiguous; out and partial must not overlap any
// input or each other. Built for pnpfast/ops/constrained_step.py.
//
// power_step_out (one step of batched power iteration): w, u, out [B, ...] (any trailing shape,
// flattened per image), state and state_next [B, 4] = (estimate, scale, active, steps), partial
// [B, P, 2] with P >= 1 partial-sum slots per image (scratch), tol a finite number >= 0, gram
// whether the estimate is sqrt(rayleigh) (M = J^T J) or |rayleigh| (M = J). Writes out and
// state_next; frozen images (active = 0) keep u and their state row. CUDA tensors on one device,
// one dtype (float32 or float64), contiguous; w and u may alias each other, out, state_next and
// partial must not overlap any input or each other. Built for pnpfast/ops/power_step.py.
//
// Importing pnpfast._C registers the ops (the static TORCH_LIBRARY initialisers below run when
// Python loads the shared library); the module itself is empty, so no pybind11 is involved.

#include <Python.h>

#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "constrained_step.h"
#include "pnp_update.h"
#include "power_step.h"
#include "spectral.h"
#include "sr_prox.h"

namespace {

using NamedTensor = std::pair<const char*, const at::Tensor*>;
using NamedTensors = std::vector<NamedTensor>;

// ---- checks shared by the ops: each names the op and the argument -----------------------------

// The tensors of one call, checked against its reference tensor `ref` (named ref_name): ref is
// a CUDA tensor of float32 or float64 (checked by the constructor); every input and output added
// must be a contiguous tensor on ref's device with ref's dtype, those added as images must have
// ref's shape, and no output may share memory with an input (ref included when it is one) or
// with another output: the kernels read their inputs through read-only, non-aliased pointers.
// The inputs may alias each other.
class CallTensors {
 public:
  CallTensors(const char* op, const char* ref_name, const at::Tensor& ref, bool ref_is_input = true)
      : op_(op), ref_name_(ref_name), ref_(ref) {
    TORCH_CHECK(ref.is_cuda(), op, ": ", ref_name, " must be a CUDA tensor, got device ",
                ref.device());
    const at::ScalarType dtype = ref.scalar_type();
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": ", ref_name,
                " must be float32 or float64, got ", dtype);
    (ref_is_input ? inputs_ : outputs_).emplace_back(ref_name, &ref);
  }

  CallTensors& input(const char* name, const at::Tensor& t, bool image = false) {
    return add(inputs_, name, t, image);
  }
  CallTensors& input(const char* name, const std::optional<at::Tensor>& t, bool image = false) {
    return t.has_value() ? add(inputs_, name, *t, image) : *this;
  }
  CallTensors& output(const char* name, const at::Tensor& t, bool image = false) {
    return add(outputs_, name, t, image);
  }

  // Device, dtype and contiguity of every tensor (ref first), then the shapes of the images.
  void check_like() const {
    TORCH_CHECK(ref_.is_contiguous(), op_, ": ", ref_name_, " must be contiguous");
    for (const auto& [name, t] : others_) {
      TORCH_CHECK(t->is_cuda(), op_, ": ", name, " must be a CUDA tensor, got device ",
                  t->device());
      TORCH_CHECK(t->device() == ref_.device(), op_, ": ", name, " is on ", t->device(),
                  " but ", ref_name_, " is on ", ref_.device());
      TORCH_CHECK(t->scalar_type() == ref_.scalar_type(), op_, ": ", name, " has dtype ",
                  t->scalar_type(), ", ", ref_name_, " has ", ref_.scalar_type());
      TORCH_CHECK(t->is_contiguous(), op_, ": ", name, " must be contiguous");
    }
    for (const auto& [name, t] : images_) {
      TORCH_CHECK(t->sizes() == ref_.sizes(), op_, ": ", name, " has shape ", t->sizes(), ", ",
                  ref_name_, " has ", ref_.sizes());
    }
  }

  // No output shares memory with an input or with another output.
  void check_apart() const {
    const auto apart = [this](const NamedTensor& a, const NamedTensor& b) {
      TORCH_CHECK(at::get_overlap_status(*a.second, *b.second) == at::MemOverlapStatus::No, op_,
                  ": ", a.first, " must not share memory with ", b.first);
    };
    for (const NamedTensor& in : inputs_) {
      for (const NamedTensor& out : outputs_) apart(out, in);
    }
    for (std::size_t i = 0; i < outputs_.size(); ++i) {
      for (std::size_t j = i + 1; j < outputs_.size(); ++j) apart(outputs_[i], outputs_[j]);
    }
  }

 private:
  CallTensors& add(NamedTensors& role, const char* name, const at::Tensor& t, bool image) {
    role.emplace_back(name, &t);
    others_.emplace_back(name, &t);
    if (image) images_.emplace_back(name, &t);
    return *this;
  }

  const char* op_;
  const char* ref_name_;
  const at::Tensor& ref_;
  NamedTensors inputs_;
  NamedTensors outputs_;
  NamedTensors others_;  // every tensor but ref, in the order added
  NamedTensors images_;
};

constexpr bool kImage = true;

// Every tensor of `vectors` is [B]: one value per image.
void check_per_image(const char* op, int64_t B, const NamedTensors& vectors) {
  for (const auto& [name, t] : vectors) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == B, op, ": ", name, " must have shape [", B,
                "], got ", t->sizes());
  }
}

// partial is [B, P] (sums == 0) or [B, P, sums]: P >= 1 partial-sum slots per image, one per
// block of the grid's x dimension.
void check_partial(const char* op, const at::Tensor& partial, int64_t B, int64_t sums) {
  const bool ok = partial.dim() == (sums == 0 ? 2 : 3) && partial.size(0) == B &&
                  partial.size(1) >= 1 && partial.size(1) <= INT32_MAX &&
                  (sums == 0 || partial.size(2) == sums);
  TORCH_CHECK(ok, op, ": partial must be [", B, ", P", sums == 0 ? "" : ", ",
              sums == 0 ? "" : std::to_string(sums), "] with 1 <= P < 2**31, got shape ",
              partial.sizes());
}

// ---- launching ---------------------------------------------------------------------------------

// Runs `launch(T{}, stream)`, T the dtype of `like` (float or double: checked by CallTensors),
// on the current stream of like's device; a failed launch raises a RuntimeError.
template <typename Launch>
void launch_on(const char* op, const at::Tensor& like, Launch&& launch) {
  const c10::cuda::CUDAGuard guard(like.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const cudaError_t err = like.scalar_type() == at::kDouble ? launch(double{}, stream)
                                                            : launch(float{}, stream);
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorName(err),
              ": ", cudaGetErrorString(err));
}

template <typename T>
const T* optional_ptr(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->const_data_ptr<T>() : nullptr;
}

// ---- the ops -----------------------------------------------------------------------------------

// Checks shared by the spectral ops; `coeffs` are the per-image [B] tensors (gamma, or s and t).
void check_spectral(const char* op, const at::Tensor& v, const at::Tensor& kty,
                    const at::Tensor& k2, const NamedTensors& coeffs, const at::Tensor& out) {
  CallTensors call(op, "v", v);
  call.input("kty", kty, kImage).input("k2", k2);
  for (const auto& [name, t] : coeffs) call.input(name, *t);
  call.output("out", out, kImage);
  TORCH_CHECK(v.dim() == 5 && v.size(4) == 2, op, ": v must be [B, C, H, Wr, 2], got shape ",
              v.sizes());
  call.check_like();
  const int64_t B = v.size(0);
  const int64_t H = v.size(2);
  const int64_t Wr = v.size(3);
  TORCH_CHECK(k2.dim() == 4 && (k2.size(0) == 1 || k2.size(0) == B) && k2.size(1) == 1 &&
                  k2.size(2) == H && k2.size(3) == Wr,
              op, ": k2 must be [1 or ", B, ", 1, ", H, ", ", Wr, "], got shape ", k2.sizes());
  check_per_image(op, B, coeffs);
  call.check_apart();
}

// Launch geometry shared by the ops: planes = B * C, frequencies per plane = H * Wr, and the
// step between the k2 planes of consecutive images (0 when one k2 serves the whole batch).
struct Geometry {
  int64_t planes;
  int64_t channels;
  int64_t freqs_per_plane;
  int64_t k2_batch_stride;
};

Geometry geometry(const at::Tensor& v, const at::Tensor& k2) {
  const int64_t freqs = v.size(2) * v.size(3);
  return {v.size(0) * v.size(1), v.size(1), freqs, k2.size(0) == 1 ? 0 : freqs};
}

void fft_prox_out_cuda(const at::Tensor& v, const at::Tensor& kty, const at::Tensor& k2,
                       const at::Tensor& gamma, at::Tensor& out) {
  constexpr const char* op = "fft_prox_out";
  check_spectral(op, v, kty, k2, {{"gamma", &gamma}}, out);
  const Geometry g = geometry(v, k2);
  launch_on(op, v, [&](auto zero, cudaStream_t stream) {
    using T = decltype(zero);
    return pnpfast::launch_fft_prox(v.const_data_ptr<T>(), kty.const_data_ptr<T>(),
                                    k2.const_data_ptr<T>(), gamma.const_data_ptr<T>(),
                                    out.mutable_data_ptr<T>(), g.planes, g.channels,
                                    g.freqs_per_plane, g.k2_batch_stride, stream);
  });
}

void fft_grad_out_cuda(const at::Tensor& v, const at::Tensor& kty, const at::Tensor& k2,
                       const at::Tensor& s, const at::Tensor& t, at::Tensor& out) {
  constexpr const char* op = "fft_grad_out";
  check_spectral(op, v, kty, k2, {{"s", &s}, {"t", &t}}, out);
  const Geometry g = geometry(v, k2);
  launch_on(op, v, [&](auto zero, cudaStream_t stream) {
    using T = decltype(zero);
    return pnpfast::launch_fft_grad(v.const_data_ptr<T>(), kty.const_data_ptr<T>(),
                                    k2.const_data_ptr<T>(), s.const_data_ptr<T>(),
                                    t.const_data_ptr<T>(), out.mutable_data_ptr<T>(), g.planes,
                                    g.channels, g.freqs_per_plane, g.k2_batch_stride, stream);
  });
}

void sr_prox_out_cuda(const at::Tensor& v, const at::Tensor& kty, const at::Tensor& k,
                      const at::Tensor& k2_mean, const at::Tensor& gamma, int64_t factor,
                      at::Tensor& out) {
  constexpr const char* op = "sr_prox_out";
  CallTensors call(op, "v", v);
  call.input("kty", kty, kImage).input("k", k).input("k2_mean", k2_mean).input("gamma", gamma);
  call.output("out", out, kImage);
  TORCH_CHECK(v.dim() == 5 && v.size(4) == 2, op, ": v must be [B, C, H, W, 2], got shape ",
              v.sizes());
  call.check_like();
  const int64_t B = v.size(0);
  const int64_t H = v.size(2);
  const int64_t W = v.size(3);
  TORCH_CHECK(factor >= 1 && factor <= pnpfast::kSrProxMaxFactor, op,
              ": factor must be 1, 2, 3 or 4 (the factors compiled), got ", factor);
  TORCH_CHECK(H % factor == 0 && W % factor == 0, op, ": factor ", factor,
              " must divide the image size ", H, "x", W);
  TORCH_CHECK(k.dim() == 5 && (k.size(0) == 1 || k.size(0) == B) && k.size(1) == 1 &&
                  k.size(2) == H && k.size(3) == W && k.size(4) == 2,
              op, ": k must be [1 or ", B, ", 1, ", H, ", ", W, ", 2], got shape ", k.sizes());
  const int64_t Bk = k.size(0);
  const int64_t h = H / factor;
  const int64_t w = W / factor;
  TORCH_CHECK(k2_mean.dim() == 4 && k2_mean.size(0) == Bk && k2_mean.size(1) == 1 &&
                  k2_mean.size(2) == h && k2_mean.size(3) == w,
              op, ": k2_mean must be [", Bk, ", 1, ", h, ", ", w, "] (one per kernel, the size ",
              "divided by the factor), got shape ", k2_mean.sizes());
  check_per_image(op, B, {{"gamma", &gamma}});
  call.check_apart();

  const bool shared = Bk == 1;
  launch_on(op, v, [&](auto zero, cudaStream_t stream) {
    using T = decltype(zero);
    return pnpfast::launch_sr_prox(v.const_data_ptr<T>(), kty.const_data_ptr<T>(),
                                   k.const_data_ptr<T>(), k2_mean.const_data_ptr<T>(),
                                   gamma.const_data_ptr<T>(), out.mutable_data_ptr<T>(),
                                   B * v.size(1), v.size(1), H, W, factor,
                                   shared ? 0 : 2 * H * W, shared ? 0 : h * w, stream);
  });
}

void pnp_update_out_cuda(const at::Tensor& f, const at::Tensor& z,
                         const std::optional<at::Tensor>& x,
                         const std::optional<at::Tensor>& xprev, const at::Tensor& coef,
                         at::Tensor& out, at::Tensor& partial) {
  constexpr const char* op = "pnp_update_out";
  CallTensors call(op, "f", f);
  TORCH_CHECK(f.dim() == 4, op, ": f must be [B, C, H, W], got shape ", f.sizes());
  const int64_t B = f.size(0);
  call.input("z", z, kImage).input("coef", coef).input("x", x, kImage);
  call.input("xprev", xprev, kImage).output("out", out, kImage).output("partial", partial);
  call.check_like();
  TORCH_CHECK(coef.dim() == 2 && coef.size(0) == B && coef.size(1) == 4, op,
              ": coef must have shape [", B, ", 4], got ", coef.sizes());
  check_partial(op, partial, B, 3);
  call.check_apart();  // the inputs may alias each other (f = z = x in a momentum step)

  const int64_t elems = B > 0 ? f.numel() / B : 0;
  launch_on(op, f, [&](auto zero, cudaStream_t stream) {
    using T = decltype(zero);
    return pnpfast::launch_pnp_update(f.const_data_ptr<T>(), z.const_data_ptr<T>(),
                                      optional_ptr<T>(x), optional_ptr<T>(xprev),
                                      coef.const_data_ptr<T>(), out.mutable_data_ptr<T>(),
                                      partial.mutable_data_ptr<T>(), B, elems, partial.size(1),
                                      stream);
  });
}

void constrained_step_out_cuda(const at::Tensor& denoised, const at::Tensor& y,
                               const at::Tensor& h, const std::optional<at::Tensor>& lifted,
                               const std::optional<at::Tensor>& mask, int64_t factor,
                               const std::optional<at::Tensor>& projected, at::Tensor& out,
                               at::Tensor& partial) {
  constexpr const char* op = "constrained_step_out";
  CallTensors call(op, "y", y);
  TORCH_CHECK(y.dim() == 4, op, ": y must be [B, C, H, W], got shape ", y.sizes());
  const int64_t B = y.size(0);
  const int64_t H = y.size(2);
  const int64_t W = y.size(3);
  call.input("denoised", denoised, kImage).input("h", h).input("lifted", lifted, kImage);
  call.input("mask", mask).input("projected", projected, kImage);
  call.output("out", out, kImage).output("partial", partial);
  call.check_like();
  check_per_image(op, B, {{"h", &h}});
  check_partial(op, partial, B, 0);

  // the form of P x_hat
  TORCH_CHECK(factor >= 0, op, ": factor must be 0 (no block mean), 2, 4 or 8, got ", factor);
  const int forms = int{mask.has_value()} + int{factor > 0} + int{projected.has_value()};
  if (!lifted.has_value()) {
    TORCH_CHECK(forms == 0, op,
                ": mask, factor and projected describe the projection of the constrained step "
                "and need lifted; without lifted pass mask=None, factor=0, projected=None");
  } else {
    TORCH_CHECK(forms == 1, op,
                ": with lifted, give exactly one of mask, factor > 0, projected (got ", forms,
                ")");
  }
  if (mask.has_value()) {
    TORCH_CHECK(mask->dim() == 4 && mask->size(0) >= 1 && B % mask->size(0) == 0 &&
                    mask->size(1) == 1 && mask->size(2) == H && mask->size(3) == W,
                op, ": mask must be [Bm, 1, ", H, ", ", W, "] with Bm dividing ", B,
                ", got shape ", mask->sizes());
  }
  if (factor > 0) {
    TORCH_CHECK(factor == 2 || factor == 4 || factor == 8, op,
                ": factor must be 2, 4 or 8 (the block sizes compiled), got ", factor);
    TORCH_CHECK(H % factor == 0 && W % factor == 0, op, ": factor ", factor,
                " must divide the image size ", H, "x", W);
    TORCH_CHECK(W / factor <= INT32_MAX, op, ": more than 2**31 - 1 blocks along a row (W = ", W,
                ")");
  }
  call.check_apart();

  launch_on(op, y, [&](auto zero, cudaStream_t stream) {
    using T = decltype(zero);
    return pnpfast::launch_constrained_step(
        denoised.const_data_ptr<T>(), y.const_data_ptr<T>(), optional_ptr<T>(lifted),
        optional_ptr<T>(mask), mask.has_value() ? mask->size(0) : 0, factor,
        optional_ptr<T>(projected), h.const_data_ptr<T>(), out.mutable_data_ptr<T>(),
        partial.mutable_data_ptr<T>(), B, y.size(1), H, W, partial.size(1), stream);
  });
}

void constrained_step_noise_cuda(at::Tensor& out, const at::Tensor& sigma, const at::Tensor& c,
                                 int64_t seed) {
  constexpr const char* op = "constrained_step_noise_";
  // out is updated in place while sigma and c are read through read-only pointers
  CallTensors call(op, "out", out, /*ref_is_input=*/false);
  TORCH_CHECK(out.dim() == 4, op, ": out must be [B, C, H, W], got shape ", out.sizes());
  const int64_t B = out.size(0);
  call.input("sigma", sigma).input("c", c).check_like();
  check_per_image(op, B, {{"sigma", &sigma}, {"c", &c}});
  TORCH_CHECK(seed >= 0, op, ": seed must be in [0, 2**63), got ", seed);
  call.check_apart();

  const int64_t elems = B > 0 ? out.numel() / B : 0;
  launch_on(op, out, [&](auto zero, cudaStream_t stream) {
    using T = decltype(zero);
    return pnpfast::launch_constrained_step_noise(out.mutable_data_ptr<T>(),
                                                  sigma.const_data_ptr<T>(),
                                                  c.const_data_ptr<T>(), B, elems, seed, stream);
  });
}

void power_step_out_cuda(const at::Tensor& w, const at::Tensor& u, const at::Tensor& state,
                         double tol, bool gram, at::Tensor& out, at::Tensor& state_next,
                         at::Tensor& partial) {
  constexpr const char* op = "power_step_out";
  CallTensors call(op, "w", w);
  TORCH_CHECK(w.dim() >= 1, op, ": w must be [B, ...] with a batch dimension, got shape ",
              w.sizes());
  const int64_t B = w.size(0);
  call.input("u", u, kImage).input("state", state).output("out", out, kImage);
  call.output("state_next", state_next).output("partial", partial).check_like();
  TORCH_CHECK(state.dim() == 2 && state.size(0) == B && state.size(1) == 4, op,
              ": state must have shape [", B, ", 4], got ", state.sizes());
  TORCH_CHECK(state_next.dim() == 2 && state_next.size(0) == B && state_next.size(1) == 4, op,
              ": state_next must have shape [", B, ", 4], got ", state_next.sizes());
  check_partial(op, partial, B, 2);
  TORCH_CHECK(std::isfinite(tol) && tol >= 0, op, ": tol must be a finite number >= 0, got ",
              tol);
  call.check_apart();  // the inputs may alias each other (w = u when M is the identity)

  const int64_t elems = B > 0 ? w.numel() / B : 0;
  launch_on(op, w, [&](auto zero, cudaStream_t stream) {
    using T = decltype(zero);
    return pnpfast::launch_power_step(w.const_data_ptr<T>(), u.const_data_ptr<T>(),
                                      state.const_data_ptr<T>(), tol, gram,
                                      out.mutable_data_ptr<T>(), state_next.mutable_data_ptr<T>(),
                                      partial.mutable_data_ptr<T>(), B, elems, partial.size(1),
                                      stream);
  });
}

}  // namespace

TORCH_LIBRARY(pnpfast_C, m) {
  m.def("fft_prox_out(Tensor v, Tensor kty, Tensor k2, Tensor gamma, Tensor(a!) out) -> ()");
  m.def(
      "fft_grad_out(Tensor v, Tensor kty, Tensor k2, Tensor s, Tensor t, Tensor(a!) out) -> ()");
  m.def(
      "sr_prox_out(Tensor v, Tensor kty, Tensor k, Tensor k2_mean, Tensor gamma, int factor, "
      "Tensor(a!) out) -> ()");
  m.def(
      "pnp_update_out(Tensor f, Tensor z, Tensor? x, Tensor? xprev, Tensor coef, Tensor(a!) out, "
      "Tensor(b!) partial) -> ()");
  m.def(
      "constrained_step_out(Tensor denoised, Tensor y, Tensor h, Tensor? lifted, Tensor? mask, "
      "int factor, Tensor? projected, Tensor(a!) out, Tensor(b!) partial) -> ()");
  m.def("constrained_step_noise_(Tensor(a!) out, Tensor sigma, Tensor c, int seed) -> ()");
  m.def(
      "power_step_out(Tensor w, Tensor u, Tensor state, float tol, bool gram, Tensor(a!) out, "
      "Tensor(b!) state_next, Tensor(c!) partial) -> ()");
}

TORCH_LIBRARY_IMPL(pnpfast_C, CUDA, m) {
  m.impl("fft_prox_out", &fft_prox_out_cuda);
  m.impl("fft_grad_out", &fft_grad_out_cuda);
  m.impl("sr_prox_out", &sr_prox_out_cuda);
  m.impl("pnp_update_out", &pnp_update_out_cuda);
  m.impl("constrained_step_out", &constrained_step_out_cuda);
  m.impl("constrained_step_noise_", &constrained_step_noise_cuda);
  m.impl("power_step_out", &power_step_out_cuda);
}

// `import pnpfast._C` needs an init function; the ops above are registered by then.
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {
      PyModuleDef_HEAD_INIT,
      "pnpfast._C",                                       // m_name
      "CUDA kernels of pnpfast, as torch.ops.pnpfast_C",  // m_doc
      -1,                                                 // m_size: no per-module state
      nullptr,                                            // m_methods
      nullptr,                                            // m_slots
      nullptr,                                            // m_traverse
      nullptr,                                            // m_clear
      nullptr,                                            // m_free
  };
  return PyModule_Create(&module);
}
