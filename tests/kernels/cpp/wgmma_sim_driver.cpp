// Test driver of the warpgroup path's host simulation (tests/kernels/test_gpu_gap_sim.py):
//   wgmma_sim_driver IN OUT   reads a case, runs the simulated path, writes a, b, m
// IN: int64 batch, nq, nk, d, dv, online_max, reverse_threads, path (0: the warpgroup path,
//     1: the small-D SIMT body); float64 s, inv2sigma2;
//     float32 q [batch nq d], k [batch nk d], v [batch nk dv], logc [batch nk].
// OUT: float32 a [batch nq dv], b [batch nq], m [batch nq]. Exit 4 with the message on
// stderr when the simulation throws (a contract violation the harness detected).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "diffevo/detail/wgmma_simulate.hpp"

namespace {

bool read_floats(std::FILE* f, std::vector<float>& x) {
  return x.empty() || std::fread(x.data(), sizeof(float), x.size(), f) == x.size();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  std::FILE* f = std::fopen(argv[1], "rb");
  if (!f) return 2;
  std::int64_t h[8];
  double sc[2];
  if (std::fread(h, sizeof h[0], 8, f) != 8 || std::fread(sc, sizeof sc[0], 2, f) != 2) return 3;
  const std::int64_t batch = h[0], nq = h[1], nk = h[2], d = h[3], dv = h[4];
  std::vector<float> q(batch * nq * d), k(batch * nk * d), v(batch * nk * dv), logc(batch * nk);
  if (!read_floats(f, q) || !read_floats(f, k) || !read_floats(f, v) || !read_floats(f, logc)) return 3;
  std::fclose(f);
  std::vector<float> a(batch * nq * dv), b(batch * nq), m(batch * nq);
  try {
    const auto run = h[7] == 1 ? diffevo::detail::simulate_simt_small_pairwise_sums
                               : diffevo::detail::simulate_wgmma_pairwise_sums;
    run(q.data(), k.data(), v.data(), logc.data(), batch, nq, nk, d, dv, sc[0], sc[1], h[5] != 0, a.data(), b.data(),
        m.data(), h[6] != 0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 4;
  }
  std::FILE* o = std::fopen(argv[2], "wb");
  if (!o) return 2;
  std::fwrite(a.data(), sizeof(float), a.size(), o);
  std::fwrite(b.data(), sizeof(float), b.size(), o);
  std::fwrite(m.data(), sizeof(float), m.size(), o);
  std::fclose(o);
  return 0;
}
