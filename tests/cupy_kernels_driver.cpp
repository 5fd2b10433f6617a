// The CPU stand-in for what CuPy puts around a kernel's body (tests/cupy_kernels_cpu.py fills
// in the preamble and the kernel): CUDA's qualifiers as nothing, CUDA's math functions from the
// C library (float overloads included, as CUDA has them), CUDA's min/max, CuPy's index object
// and raw arrays. Each element is found by unravelling its flat C-order index over the loop's
// shape with each argument's strides (0 along a broadcast axis), as CuPy's indexer does.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <math.h>

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __noinline__

struct _TLArray {
    char *data;
    long long ndim, size;
    long long shape[16], strides[16];
};

static inline char *_tl_at(const _TLArray &a, long long index) {
    long long offset = 0;
    for (long long k = a.ndim - 1; k >= 0; --k) {
        long long n = a.shape[k];
        offset += (index % n) * a.strides[k];
        index /= n;
    }
    return a.data + offset;
}

// CuPy's `_ind`, `_in_ind`, `_out_ind`: only their size here
struct _TLIndex {
    long long n;
    explicit _TLIndex(long long n) : n(n) {}
    long long size() const { return n; }
};

// a raw parameter: the whole array, indexed by a flat C-order index (CuPy's CArray)
template <typename T> struct CArray {
    const _TLArray *a;
    explicit CArray(const _TLArray &a) : a(&a) {}
    T &operator[](ptrdiff_t i) const { return *(T *)_tl_at(*a, i); }
    long long size() const { return a->size; }
};

// CUDA's min and max: fminf/fmaxf for floats (a NaN operand gives the other one)
__device__ inline float min(float a, float b) { return fminf(a, b); }
__device__ inline float max(float a, float b) { return fmaxf(a, b); }
__device__ inline double min(double a, double b) { return fmin(a, b); }
__device__ inline double max(double a, double b) { return fmax(a, b); }
__device__ inline double min(float a, double b) { return fmin(a, b); }
__device__ inline double max(float a, double b) { return fmax(a, b); }
__device__ inline double min(double a, float b) { return fmin(a, b); }
__device__ inline double max(double a, float b) { return fmax(a, b); }
__device__ inline int min(int a, int b) { return a < b ? a : b; }
__device__ inline int max(int a, int b) { return a > b ? a : b; }
__device__ inline long long min(long long a, long long b) { return a < b ? a : b; }
__device__ inline long long max(long long a, long long b) { return a > b ? a : b; }
__device__ inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
__device__ inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
__device__ inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
__device__ inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

/*PREAMBLE*/

/*KERNEL*/
