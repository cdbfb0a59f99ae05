// Torch bindings of the pnpfast CUDA kernels: the operator library pnpfast_C.
//
//   torch.ops.pnpfast_C.fft_prox_out(v, kty, k2, gamma, out)   (csrc/fft_prox.cu)
//   torch.ops.pnpfast_C.fft_grad_out(v, kty, k2, s, t, out)    (csrc/fft_grad.cu)
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

#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include "constrained_step.h"
#include "pnp_update.h"
#include "power_step.h"
#include "spectral.h"

namespace {

using NamedTensor = std::pair<const char*, const at::Tensor*>;

// Checks shared by the spectral ops; `coeffs` are the per-image [B] tensors (gamma, or s and t).
void check_spectral(const char* op, const at::Tensor& v, const at::Tensor& kty,
                    const at::Tensor& k2, std::initializer_list<NamedTensor> coeffs,
                    const at::Tensor& out) {
  TORCH_CHECK(v.is_cuda(), op, ": v must be a CUDA tensor, got device ", v.device());
  const at::ScalarType dtype = v.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op,
              ": v must be float32 or float64, got ", dtype);

  const auto check_common = [&](const char* name, const at::Tensor& x) {
    TORCH_CHECK(x.is_cuda(), op, ": ", name, " must be a CUDA tensor, got device ", x.device());
    TORCH_CHECK(x.device() == v.device(), op, ": ", name, " is on ", x.device(),
                " but v is on ", v.device());
    TORCH_CHECK(x.scalar_type() == dtype, op, ": ", name, " has dtype ", x.scalar_type(),
                ", v has ", dtype);
    TORCH_CHECK(x.is_contiguous(), op, ": ", name, " must be contiguous");
  };
  check_common("v", v);
  check_common("kty", kty);
  check_common("k2", k2);
  for (const NamedTensor& c : coeffs) check_common(c.first, *c.second);
  check_common("out", out);

  TORCH_CHECK(v.dim() == 5 && v.size(4) == 2, op, ": v must be [B, C, H, Wr, 2], got shape ",
              v.sizes());
  TORCH_CHECK(kty.sizes() == v.sizes(), op, ": kty has shape ", kty.sizes(), ", v has ",
              v.sizes());
  TORCH_CHECK(out.sizes() == v.sizes(), op, ": out has shape ", out.sizes(), ", v has ",
              v.sizes());
  const int64_t B = v.size(0);
  const int64_t H = v.size(2);
  const int64_t Wr = v.size(3);
  TORCH_CHECK(k2.dim() == 4 && (k2.size(0) == 1 || k2.size(0) == B) && k2.size(1) == 1 &&
                  k2.size(2) == H && k2.size(3) == Wr,
              op, ": k2 must be [1 or ", B, ", 1, ", H, ", ", Wr, "], got shape ", k2.sizes());
  for (const NamedTensor& c : coeffs) {
    TORCH_CHECK(c.second->dim() == 1 && c.second->size(0) == B, op, ": ", c.first,
                " must have shape [", B, "], got ", c.second->sizes());
  }

  // The kernels read their inputs through read-only, non-aliased pointers.
  const auto check_apart = [&](const char* name, const at::Tensor& x) {
    TORCH_CHECK(at::get_overlap_status(out, x) == at::MemOverlapStatus::No, op,
                ": out must not share memory with ", name);
  };
  check_apart("v", v);
  check_apart("kty", kty);
  check_apart("k2", k2);
  for (const NamedTensor& c : coeffs) check_apart(c.first, *c.second);
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

void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorName(err),
              ": ", cudaGetErrorString(err));
}

void fft_prox_out_cuda(const at::Tensor& v, const at::Tensor& kty, const at::Tensor& k2,
                       const at::Tensor& gamma, at::Tensor& out) {
  check_spectral("fft_prox_out", v, kty, k2, {{"gamma", &gamma}}, out);
  const c10::cuda::CUDAGuard guard(v.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const Geometry g = geometry(v, k2);
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "fft_prox_out", [&] {
    check_launch("fft_prox_out",
                 pnpfast::launch_fft_prox(
                     v.const_data_ptr<scalar_t>(), kty.const_data_ptr<scalar_t>(),
                     k2.const_data_ptr<scalar_t>(), gamma.const_data_ptr<scalar_t>(),
                     out.mutable_data_ptr<scalar_t>(), g.planes, g.channels, g.freqs_per_plane,
                     g.k2_batch_stride, stream));
  });
}

void fft_grad_out_cuda(const at::Tensor& v, const at::Tensor& kty, const at::Tensor& k2,
                       const at::Tensor& s, const at::Tensor& t, at::Tensor& out) {
  check_spectral("fft_grad_out", v, kty, k2, {{"s", &s}, {"t", &t}}, out);
  const c10::cuda::CUDAGuard guard(v.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const Geometry g = geometry(v, k2);
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "fft_grad_out", [&] {
    check_launch("fft_grad_out",
                 pnpfast::launch_fft_grad(
                     v.const_data_ptr<scalar_t>(), kty.const_data_ptr<scalar_t>(),
                     k2.const_data_ptr<scalar_t>(), s.const_data_ptr<scalar_t>(),
                     t.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), g.planes,
                     g.channels, g.freqs_per_plane, g.k2_batch_stride, stream));
  });
}

void pnp_update_out_cuda(const at::Tensor& f, const at::Tensor& z,
                         const std::optional<at::Tensor>& x,
                         const std::optional<at::Tensor>& xprev, const at::Tensor& coef,
                         at::Tensor& out, at::Tensor& partial) {
  constexpr const char* op = "pnp_update_out";
  TORCH_CHECK(f.is_cuda(), op, ": f must be a CUDA tensor, got device ", f.device());
  const at::ScalarType dtype = f.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op,
              ": f must be float32 or float64, got ", dtype);
  TORCH_CHECK(f.dim() == 4, op, ": f must be [B, C, H, W], got shape ", f.sizes());
  const int64_t B = f.size(0);

  // every tensor but f, with its name; x and xprev only when given
  std::vector<NamedTensor> others = {{"z", &z}, {"coef", &coef}, {"out", &out},
                                     {"partial", &partial}};
  if (x.has_value()) others.emplace_back("x", &*x);
  if (xprev.has_value()) others.emplace_back("xprev", &*xprev);
  TORCH_CHECK(f.is_contiguous(), op, ": f must be contiguous");
  for (const NamedTensor& t : others) {
    const at::Tensor& u = *t.second;
    TORCH_CHECK(u.is_cuda(), op, ": ", t.first, " must be a CUDA tensor, got device ",
                u.device());
    TORCH_CHECK(u.device() == f.device(), op, ": ", t.first, " is on ", u.device(),
                " but f is on ", f.device());
    TORCH_CHECK(u.scalar_type() == dtype, op, ": ", t.first, " has dtype ", u.scalar_type(),
                ", f has ", dtype);
    TORCH_CHECK(u.is_contiguous(), op, ": ", t.first, " must be contiguous");
  }
  const auto check_image = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(t.sizes() == f.sizes(), op, ": ", name, " has shape ", t.sizes(), ", f has ",
                f.sizes());
  };
  check_image("z", z);
  check_image("out", out);
  if (x.has_value()) check_image("x", *x);
  if (xprev.has_value()) check_image("xprev", *xprev);
  TORCH_CHECK(coef.dim() == 2 && coef.size(0) == B && coef.size(1) == 4, op,
              ": coef must have shape [", B, ", 4], got ", coef.sizes());
  TORCH_CHECK(partial.dim() == 3 && partial.size(0) == B && partial.size(1) >= 1 &&
                  partial.size(1) <= INT32_MAX && partial.size(2) == 3,
              op, ": partial must be [", B, ", P, 3] with 1 <= P < 2**31, got shape ",
              partial.sizes());

  // The kernel reads its inputs through read-only, non-aliased pointers; the inputs may alias
  // each other (f = z = x in a momentum step).
  const auto check_apart = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(at::get_overlap_status(out, t) == at::MemOverlapStatus::No, op,
                ": out must not share memory with ", name);
    TORCH_CHECK(at::get_overlap_status(partial, t) == at::MemOverlapStatus::No, op,
                ": partial must not share memory with ", name);
  };
  check_apart("f", f);
  for (const NamedTensor& t : others) {
    if (t.second != &out && t.second != &partial) check_apart(t.first, *t.second);
  }
  TORCH_CHECK(at::get_overlap_status(out, partial) == at::MemOverlapStatus::No, op,
              ": out must not share memory with partial");

  const c10::cuda::CUDAGuard guard(f.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t elems = B > 0 ? f.numel() / B : 0;
  AT_DISPATCH_FLOATING_TYPES(dtype, "pnp_update_out", [&] {
    const scalar_t* x_ptr = x.has_value() ? x->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* xprev_ptr = xprev.has_value() ? xprev->const_data_ptr<scalar_t>() : nullptr;
    check_launch(op, pnpfast::launch_pnp_update(
                         f.const_data_ptr<scalar_t>(), z.const_data_ptr<scalar_t>(), x_ptr,
                         xprev_ptr, coef.const_data_ptr<scalar_t>(),
                         out.mutable_data_ptr<scalar_t>(), partial.mutable_data_ptr<scalar_t>(),
                         B, elems, partial.size(1), stream));
  });
}

// Device, dtype and contiguity of `others` against `ref` (named ref_name), for the
// constrained-step ops.
void check_like(const char* op, const char* ref_name, const at::Tensor& ref,
                const std::vector<NamedTensor>& others) {
  TORCH_CHECK(ref.is_contiguous(), op, ": ", ref_name, " must be contiguous");
  for (const NamedTensor& t : others) {
    const at::Tensor& u = *t.second;
    TORCH_CHECK(u.is_cuda(), op, ": ", t.first, " must be a CUDA tensor, got device ",
                u.device());
    TORCH_CHECK(u.device() == ref.device(), op, ": ", t.first, " is on ", u.device(), " but ",
                ref_name, " is on ", ref.device());
    TORCH_CHECK(u.scalar_type() == ref.scalar_type(), op, ": ", t.first, " has dtype ",
                u.scalar_type(), ", ", ref_name, " has ", ref.scalar_type());
    TORCH_CHECK(u.is_contiguous(), op, ": ", t.first, " must be contiguous");
  }
}

void constrained_step_out_cuda(const at::Tensor& denoised, const at::Tensor& y,
                               const at::Tensor& h, const std::optional<at::Tensor>& lifted,
                               const std::optional<at::Tensor>& mask, int64_t factor,
                               const std::optional<at::Tensor>& projected, at::Tensor& out,
                               at::Tensor& partial) {
  constexpr const char* op = "constrained_step_out";
  TORCH_CHECK(y.is_cuda(), op, ": y must be a CUDA tensor, got device ", y.device());
  const at::ScalarType dtype = y.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op,
              ": y must be float32 or float64, got ", dtype);
  TORCH_CHECK(y.dim() == 4, op, ": y must be [B, C, H, W], got shape ", y.sizes());
  const int64_t B = y.size(0);
  const int64_t H = y.size(2);
  const int64_t W = y.size(3);

  // every tensor but y, with its name; lifted, mask and projected only when given
  std::vector<NamedTensor> others = {
      {"denoised", &denoised}, {"h", &h}, {"out", &out}, {"partial", &partial}};
  if (lifted.has_value()) others.emplace_back("lifted", &*lifted);
  if (mask.has_value()) others.emplace_back("mask", &*mask);
  if (projected.has_value()) others.emplace_back("projected", &*projected);
  check_like(op, "y", y, others);
  const auto check_image = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(t.sizes() == y.sizes(), op, ": ", name, " has shape ", t.sizes(), ", y has ",
                y.sizes());
  };
  check_image("denoised", denoised);
  check_image("out", out);
  if (lifted.has_value()) check_image("lifted", *lifted);
  if (projected.has_value()) check_image("projected", *projected);
  TORCH_CHECK(h.dim() == 1 && h.size(0) == B, op, ": h must have shape [", B, "], got ",
              h.sizes());
  TORCH_CHECK(partial.dim() == 2 && partial.size(0) == B && partial.size(1) >= 1 &&
                  partial.size(1) <= INT32_MAX,
              op, ": partial must be [", B, ", P] with 1 <= P < 2**31, got shape ",
              partial.sizes());

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

  // The kernels read their inputs through read-only, non-aliased pointers; the inputs may
  // alias each other.
  const auto check_apart = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(at::get_overlap_status(out, t) == at::MemOverlapStatus::No, op,
                ": out must not share memory with ", name);
    TORCH_CHECK(at::get_overlap_status(partial, t) == at::MemOverlapStatus::No, op,
                ": partial must not share memory with ", name);
  };
  check_apart("y", y);
  for (const NamedTensor& t : others) {
    if (t.second != &out && t.second != &partial) check_apart(t.first, *t.second);
  }
  TORCH_CHECK(at::get_overlap_status(out, partial) == at::MemOverlapStatus::No, op,
              ": out must not share memory with partial");

  const c10::cuda::CUDAGuard guard(y.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(dtype, "constrained_step_out", [&] {
    const auto optional_ptr = [](const std::optional<at::Tensor>& t) -> const scalar_t* {
      return t.has_value() ? t->const_data_ptr<scalar_t>() : nullptr;
    };
    check_launch(op, pnpfast::launch_constrained_step(
                         denoised.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(),
                         optional_ptr(lifted), optional_ptr(mask),
                         mask.has_value() ? mask->size(0) : 0, factor, optional_ptr(projected),
                         h.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                         partial.mutable_data_ptr<scalar_t>(), B, y.size(1), H, W,
                         partial.size(1), stream));
  });
}

void constrained_step_noise_cuda(at::Tensor& out, const at::Tensor& sigma, const at::Tensor& c,
                                 int64_t seed) {
  constexpr const char* op = "constrained_step_noise_";
  TORCH_CHECK(out.is_cuda(), op, ": out must be a CUDA tensor, got device ", out.device());
  const at::ScalarType dtype = out.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op,
              ": out must be float32 or float64, got ", dtype);
  TORCH_CHECK(out.dim() == 4, op, ": out must be [B, C, H, W], got shape ", out.sizes());
  const int64_t B = out.size(0);
  check_like(op, "out", out, {{"sigma", &sigma}, {"c", &c}});
  TORCH_CHECK(sigma.dim() == 1 && sigma.size(0) == B, op, ": sigma must have shape [", B,
              "], got ", sigma.sizes());
  TORCH_CHECK(c.dim() == 1 && c.size(0) == B, op, ": c must have shape [", B, "], got ",
              c.sizes());
  TORCH_CHECK(seed >= 0, op, ": seed must be in [0, 2**63), got ", seed);
  // out is updated in place while sigma and c are read through read-only pointers
  TORCH_CHECK(at::get_overlap_status(out, sigma) == at::MemOverlapStatus::No, op,
              ": out must not share memory with sigma");
  TORCH_CHECK(at::get_overlap_status(out, c) == at::MemOverlapStatus::No, op,
              ": out must not share memory with c");

  const c10::cuda::CUDAGuard guard(out.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t elems = B > 0 ? out.numel() / B : 0;
  AT_DISPATCH_FLOATING_TYPES(dtype, "constrained_step_noise_", [&] {
    check_launch(op, pnpfast::launch_constrained_step_noise(
                         out.mutable_data_ptr<scalar_t>(), sigma.const_data_ptr<scalar_t>(),
                         c.const_data_ptr<scalar_t>(), B, elems, seed, stream));
  });
}

void power_step_out_cuda(const at::Tensor& w, const at::Tensor& u, const at::Tensor& state,
                         double tol, bool gram, at::Tensor& out, at::Tensor& state_next,
                         at::Tensor& partial) {
  constexpr const char* op = "power_step_out";
  TORCH_CHECK(w.is_cuda(), op, ": w must be a CUDA tensor, got device ", w.device());
  const at::ScalarType dtype = w.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op,
              ": w must be float32 or float64, got ", dtype);
  TORCH_CHECK(w.dim() >= 1, op, ": w must be [B, ...] with a batch dimension, got shape ",
              w.sizes());
  const int64_t B = w.size(0);

  const std::vector<NamedTensor> others = {{"u", &u},
                                           {"state", &state},
                                           {"out", &out},
                                           {"state_next", &state_next},
                                           {"partial", &partial}};
  check_like(op, "w", w, others);
  TORCH_CHECK(u.sizes() == w.sizes(), op, ": u has shape ", u.sizes(), ", w has ", w.sizes());
  TORCH_CHECK(out.sizes() == w.sizes(), op, ": out has shape ", out.sizes(), ", w has ",
              w.sizes());
  TORCH_CHECK(state.dim() == 2 && state.size(0) == B && state.size(1) == 4, op,
              ": state must have shape [", B, ", 4], got ", state.sizes());
  TORCH_CHECK(state_next.dim() == 2 && state_next.size(0) == B && state_next.size(1) == 4, op,
              ": state_next must have shape [", B, ", 4], got ", state_next.sizes());
  TORCH_CHECK(partial.dim() == 3 && partial.size(0) == B && partial.size(1) >= 1 &&
                  partial.size(1) <= INT32_MAX && partial.size(2) == 2,
              op, ": partial must be [", B, ", P, 2] with 1 <= P < 2**31, got shape ",
              partial.sizes());
  TORCH_CHECK(std::isfinite(tol) && tol >= 0, op, ": tol must be a finite number >= 0, got ",
              tol);

  // The kernels read their inputs through read-only, non-aliased pointers; the inputs may alias
  // each other (w = u when M is the identity).
  const std::vector<NamedTensor> inputs = {{"w", &w}, {"u", &u}, {"state", &state}};
  const std::vector<NamedTensor> outputs = {
      {"out", &out}, {"state_next", &state_next}, {"partial", &partial}};
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    for (const NamedTensor& t : inputs) {
      TORCH_CHECK(at::get_overlap_status(*outputs[i].second, *t.second) ==
                      at::MemOverlapStatus::No,
                  op, ": ", outputs[i].first, " must not share memory with ", t.first);
    }
    for (std::size_t j = i + 1; j < outputs.size(); ++j) {
      TORCH_CHECK(at::get_overlap_status(*outputs[i].second, *outputs[j].second) ==
                      at::MemOverlapStatus::No,
                  op, ": ", outputs[i].first, " must not share memory with ", outputs[j].first);
    }
  }

  const c10::cuda::CUDAGuard guard(w.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t elems = B > 0 ? w.numel() / B : 0;
  AT_DISPATCH_FLOATING_TYPES(dtype, "power_step_out", [&] {
    check_launch(op, pnpfast::launch_power_step(
                         w.const_data_ptr<scalar_t>(), u.const_data_ptr<scalar_t>(),
                         state.const_data_ptr<scalar_t>(), tol, gram,
                         out.mutable_data_ptr<scalar_t>(), state_next.mutable_data_ptr<scalar_t>(),
                         partial.mutable_data_ptr<scalar_t>(), B, elems, partial.size(1),
                         stream));
  });
}

}  // namespace

TORCH_LIBRARY(pnpfast_C, m) {
  m.def("fft_prox_out(Tensor v, Tensor kty, Tensor k2, Tensor gamma, Tensor(a!) out) -> ()");
  m.def(
      "fft_grad_out(Tensor v, Tensor kty, Tensor k2, Tensor s, Tensor t, Tensor(a!) out) -> ()");
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
