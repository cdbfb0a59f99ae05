// Torch bindings of the pnpfast CUDA kernels: the operator library pnpfast_C.
//
//   torch.ops.pnpfast_C.fft_prox_out(v, kty, k2, gamma, out)   (csrc/fft_prox.cu)
//   torch.ops.pnpfast_C.fft_grad_out(v, kty, k2, s, t, out)    (csrc/fft_grad.cu)
//   torch.ops.pnpfast_C.pnp_update_out(f, z, x, xprev, coef, out, partial)
//                                                                (csrc/pnp_update.cu)
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
// Importing pnpfast._C registers the ops (the static TORCH_LIBRARY initialisers below run when
// Python loads the shared library); the module itself is empty, so no pybind11 is involved.

#include <Python.h>

#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include "pnp_update.h"
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

}  // namespace

TORCH_LIBRARY(pnpfast_C, m) {
  m.def("fft_prox_out(Tensor v, Tensor kty, Tensor k2, Tensor gamma, Tensor(a!) out) -> ()");
  m.def(
      "fft_grad_out(Tensor v, Tensor kty, Tensor k2, Tensor s, Tensor t, Tensor(a!) out) -> ()");
  m.def(
      "pnp_update_out(Tensor f, Tensor z, Tensor? x, Tensor? xprev, Tensor coef, Tensor(a!) out, "
      "Tensor(b!) partial) -> ()");
}

TORCH_LIBRARY_IMPL(pnpfast_C, CUDA, m) {
  m.impl("fft_prox_out", &fft_prox_out_cuda);
  m.impl("fft_grad_out", &fft_grad_out_cuda);
  m.impl("pnp_update_out", &pnp_update_out_cuda);
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
