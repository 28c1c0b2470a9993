// Just enough of the CUDA runtime for gpucnn's kernels to compile as C++ and run on the CPU, so
// that the tests check their arithmetic and indexing on machines without a GPU.
//
// A launch runs the grid's blocks one after another. The threads of a block are coroutines on
// one CPU thread (ucontext): each runs until it finishes or reaches __syncthreads(), and the
// block goes past a barrier once every thread has reached it. __shared__ memory is one array
// all of them see (a function-local static: blocks never overlap). Deterministic: a test that
// passes once passes every time.
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
static dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads)
#define __shared__ static
#define __syncthreads() block_barrier()
#define EXPORT __attribute__((visibility("default")))  // the launchers, which Python calls
using std::max;
using std::min;

static inline float __int_as_float(int bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// ----- the threads of one block -------------------------------------------------------------
struct Thread {
  ucontext_t context;
  std::vector<char> stack = std::vector<char>(256 * 1024);
  bool done = false;
};
static ucontext_t block_scheduler;
static std::vector<Thread> block_threads;
static unsigned block_current;
static void (*block_body)();  // runs the kernel with its arguments, in the current thread

static void set_thread_index(unsigned t) {
  block_current = t;
  threadIdx = {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
}

static void block_barrier() {
  swapcontext(&block_threads[block_current].context, &block_scheduler);
}

static void thread_main() {
  block_body();
  block_threads[block_current].done = true;  // then returns to the scheduler (uc_link)
}

// Runs every thread to its next barrier, round after round, until all have finished.
static void run_block(unsigned threads) {
  if (block_threads.size() < threads) block_threads.resize(threads);
  for (unsigned t = 0; t < threads; ++t) {
    Thread& th = block_threads[t];
    th.done = false;
    getcontext(&th.context);
    th.context.uc_stack.ss_sp = th.stack.data();
    th.context.uc_stack.ss_size = th.stack.size();
    th.context.uc_link = &block_scheduler;
    makecontext(&th.context, thread_main, 0);
  }
  for (bool running = true; running;) {
    running = false;
    for (unsigned t = 0; t < threads; ++t) {
      if (block_threads[t].done) continue;
      set_thread_index(t);
      swapcontext(&block_scheduler, &block_threads[t].context);
      running = running || !block_threads[t].done;
    }
  }
}

// ----- launches ---------------------------------------------------------------------------------
// Calls f with its arguments read from args[i], each the address of a value of f's i-th type,
// as cuLaunchKernel passes them.
template <class... P, std::size_t... I>
static void call(void (*f)(P...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::remove_reference_t<P>*>(args[I])...);
}

template <class... P>
static void (*kernel)(P...);
template <class... P>
static void** kernel_args;

// An access to an inaccessible page (the guards the caller puts around each array) ends the
// launch: the handler jumps back to it, keeping where and who.
static sigjmp_buf fault_jump;
struct Fault {
  void* address;
  unsigned block[3], thread[3];
};
static Fault fault;

static void on_fault(int, siginfo_t* info, void*) {
  fault = {info->si_addr, {blockIdx.x, blockIdx.y, blockIdx.z},
           {threadIdx.x, threadIdx.y, threadIdx.z}};
  siglongjmp(fault_jump, 1);
}

extern "C" EXPORT const Fault* last_fault() { return &fault; }

// Runs f over grid x block. Returns 0; -1 for a wrong number of arguments; i + 1 when the
// value given for argument i has not the size f's parameter has (which on a GPU reads garbage);
// -2 when a thread touched an inaccessible page (see last_fault).
template <class... P>
static int launch(void (*f)(P...), const unsigned* grid, const unsigned* block, void** args,
                  int nargs, const int* sizes) {
  constexpr int want[] = {(int)sizeof(P)..., 0};
  if (nargs != (int)sizeof...(P)) return -1;
  for (int i = 0; i < nargs; ++i)
    if (sizes[i] != want[i]) return i + 1;
  kernel<P...> = f;
  kernel_args<P...> = args;
  block_body = [] { call(kernel<P...>, kernel_args<P...>, std::index_sequence_for<P...>{}); };
  gridDim = {grid[0], grid[1], grid[2]};
  blockDim = {block[0], block[1], block[2]};
  struct sigaction action = {}, previous = {};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &action, &previous);
  int rc = 0;
  if (sigsetjmp(fault_jump, 1) == 0) {
    for (unsigned z = 0; z < grid[2]; ++z)
      for (unsigned y = 0; y < grid[1]; ++y)
        for (unsigned x = 0; x < grid[0]; ++x) {
          blockIdx = {x, y, z};
          run_block(block[0] * block[1] * block[2]);
        }
  } else {
    rc = -2;
  }
  sigaction(SIGSEGV, &previous, nullptr);
  return rc;
}
