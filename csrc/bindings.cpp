// Torch bindings of the pnpfast CUDA kernels: the operator library pnpfast_C.
//
//   torch.ops.pnpfast_C.fft_prox_out(v, kty, k2, gamma, out)   (csrc/fft_prox.cu)
//   torch.ops.pnpfast_C.fft_grad_out(v, kty, k2, s, t, out)    (csrc/fft_grad.cu)
//
// v, kty, out are the [B, C, H, Wr, 2] float views (torch.view_as_real) of rfft2 spectra, k2 is
// [1 or B, 1, H, Wr], gamma / s / t are [B]; all CUDA tensors on one device, one dtype (float32
// or float64), contiguous. `out` is written and must not overlap any input. The ops are built
// for pnpfast/ops/fft_prox.py and pnpfast/ops/fft_grad.py, which validate the complex inputs
// first; the checks here guard direct calls.
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
#include <utility>

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

}  // namespace

TORCH_LIBRARY(pnpfast_C, m) {
  m.def("fft_prox_out(Tensor v, Tensor kty, Tensor k2, Tensor gamma, Tensor(a!) out) -> ()");
  m.def(
      "fft_grad_out(Tensor v, Tensor kty, Tensor k2, Tensor s, Tensor t, Tensor(a!) out) -> ()");
}

TORCH_LIBRARY_IMPL(pnpfast_C, CUDA, m) {
  m.impl("fft_prox_out", &fft_prox_out_cuda);
  m.impl("fft_grad_out", &fft_grad_out_cuda);
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
