// The C++ host API (diffevo/host.hpp) and the host simulation of the CUDA block bodies
// (detail/simulate.hpp), built by tests/kernels/test_cpp_sanitizers.py with
// -fsanitize=address,undefined -fno-sanitize-recover=all. Checks:
//  * normal calls against a naive long-double oracle written here (SPEC section 3's
//    unscaled formula, section 4's step): float64 to 1e-12, float32 to 2e-5 of the scale;
//  * reference mode with fitness whose sum overflows the dtype (float32 1e37 x 512,
//    float64 1e307 x 64) still matches the oracle (long double does not overflow);
//  * every bad argument throws std::invalid_argument whose message names it and starts
//    with "file:line: ".
// Prints one line per failure and "host_api_check: N checks, F failures"; exit 1 on any.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <diffevo/detail/simulate.hpp>
#include <diffevo/host.hpp>

namespace {

using ld = long double;
int checks = 0, failures = 0;

void expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// `call` must throw std::invalid_argument naming `name`, with a "file:line: " prefix.
void expect_refused(const std::string& label, const char* name, const std::function<void()>& call) {
  try {
    call();
  } catch (const std::invalid_argument& err) {
    const std::string msg = err.what();
    const auto colon = msg.find(".hpp:");
    const bool located = colon != std::string::npos && colon + 5 < msg.size() &&
                         std::isdigit(static_cast<unsigned char>(msg[colon + 5]));
    expect(located && msg.find(name) != std::string::npos, label + ": message '" + msg + "' lacks file:line or " + name);
    return;
  } catch (const std::exception& err) {
    expect(false, label + ": threw the wrong type: " + err.what());
    return;
  }
  expect(false, label + ": accepted");
}

template <class T>
ld max_abs(const std::vector<T>& v) {
  ld m = 0;
  for (T x : v) m = std::max(m, std::fabs(static_cast<ld>(x)));
  return m;
}

template <class T>
void expect_close(const std::string& label, const std::vector<T>& got, const std::vector<ld>& want, ld rtol) {
  ld scale = 1, worst = 0;
  for (ld w : want) scale = std::max(scale, std::fabs(w));
  bool finite = got.size() == want.size();
  for (std::size_t i = 0; finite && i < got.size(); ++i) {
    finite = std::isfinite(static_cast<ld>(got[i]));
    worst = std::max(worst, std::fabs(static_cast<ld>(got[i]) - want[i]));
  }
  expect(finite && worst <= rtol * scale, label + ": error " + std::to_string(static_cast<double>(worst / scale)) +
                                              " of the scale (allowed " + std::to_string(static_cast<double>(rtol)) + ")");
}

// SPEC section 3, unscaled, in long double: K_ij = exp(-|z_i - s z_j|^2 / (2 (1 - alpha))).
template <class T>
std::vector<ld> oracle_x0(const std::vector<T>& x, const std::vector<T>& g, int n, int D, double alpha, bool kde,
                          double h, bool exact) {
  const ld s = std::sqrt(static_cast<ld>(alpha)), inv = 1 / (2 * (1 - static_cast<ld>(alpha))), eps = 1e-9L;
  auto d2 = [&](int i, int j, ld scale) {
    ld acc = 0;
    for (int c = 0; c < D; ++c) {
      const ld diff = static_cast<ld>(x[i * D + c]) - scale * static_cast<ld>(x[j * D + c]);
      acc += diff * diff;
    }
    return acc;
  };
  std::vector<ld> p(n, 1.0L / n), out(static_cast<std::size_t>(n) * D, 0);
  if (kde) {
    ld total = 0;
    for (int i = 0; i < n; ++i) {
      p[i] = 0;
      for (int j = 0; j < n; ++j) p[i] += std::exp(-d2(i, j, 1) / (2 * static_cast<ld>(h) * h));
      total += p[i];
    }
    for (int i = 0; i < n; ++i) p[i] = n * p[i] / total;
  }
  bool any = false;
  for (T gj : g) any = any || gj > 0;
  std::vector<ld> c(n), S(D, 0);
  ld Z = 0;
  for (int j = 0; j < n; ++j) {
    c[j] = exact ? (any ? static_cast<ld>(g[j]) : 1.0L) : static_cast<ld>(g[j]) + eps;
    Z += c[j];
    for (int k = 0; k < D; ++k) S[k] += c[j] * static_cast<ld>(x[j * D + k]);
  }
  for (int i = 0; i < n; ++i) {
    ld B = 0;
    std::vector<ld> A(D, 0);
    for (int j = 0; j < n; ++j) {
      const ld w = c[j] * std::exp(-d2(i, j, s) * inv);
      B += w;
      for (int k = 0; k < D; ++k) A[k] += w * static_cast<ld>(x[j * D + k]);
    }
    for (int k = 0; k < D; ++k)
      out[i * D + k] = exact ? A[k] / B : (A[k] + eps * S[k]) / (B + eps * Z + eps * (p[i] + eps));
  }
  return out;
}

template <class T>
void check_normal_calls(const char* tname, ld rtol) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unif;
  const int n = 37, D = 3;
  std::vector<T> x(n * D), g(n), x0(n * D), p(n);
  for (auto& v : x) v = static_cast<T>(normal(rng));
  for (auto& v : g) v = static_cast<T>(unif(rng) < 0.2 ? 0.0 : unif(rng));
  const std::string t = tname;
  for (double alpha : {0.05, 0.5, 0.95}) {
    diffevo::host::x0_estimate<T>(x.data(), g.data(), n, D, alpha, x0.data());
    expect_close(t + " x0 reference uniform", x0, oracle_x0(x, g, n, D, alpha, false, 0, false), rtol);
    diffevo::host::x0_estimate<T>(x.data(), g.data(), n, D, alpha, x0.data(), nullptr, 0, diffevo::density::kde, 0.7);
    expect_close(t + " x0 reference kde", x0, oracle_x0(x, g, n, D, alpha, true, 0.7, false), rtol);
    diffevo::host::x0_estimate<T>(x.data(), g.data(), n, D, alpha, x0.data(), nullptr, 0, diffevo::density::uniform,
                                  0.1, diffevo::mode::exact);
    expect_close(t + " x0 exact", x0, oracle_x0(x, g, n, D, alpha, false, 0, true), rtol);
  }
  // the DDIM step: x_prev = sqrt(ap) x0 + dir (x_t - sqrt(at) x0) / sqrt(1 - at) + sigma z
  std::vector<T> z(n * D), out(n * D);
  for (auto& v : z) v = static_cast<T>(normal(rng));
  const ld at = 0.4L, ap = 0.7L, eta = 0.8L;
  const ld sigma = eta * std::sqrt((1 - ap) / (1 - at) * (1 - at / ap)), dir = std::sqrt(1 - ap - sigma * sigma);
  std::vector<ld> want(n * D);
  for (int i = 0; i < n * D; ++i)
    want[i] = std::sqrt(ap) * x0[i] + dir * (x[i] - std::sqrt(at) * x0[i]) / std::sqrt(1 - at) + sigma * z[i];
  diffevo::host::ddim_step<T>(x.data(), x0.data(), z.data(), n * D, 0.4, 0.7, 0.8, out.data());
  expect_close(t + " ddim_step", out, want, rtol);
  // the simulated GPU block bodies agree with the fast host path
  std::vector<T> logc(n), a1(n * D), b1(n), m1(n), a2(n * D), b2(n), m2(n);
  for (int j = 0; j < n; ++j) logc[j] = static_cast<T>(std::log(g[j] + 1e-9));
  diffevo::host::pairwise_sums<T>(x.data(), x.data(), x.data(), logc.data(), 1, n, n, D, D, 0.8, 1.5, true, a1.data(),
                                  b1.data(), m1.data());
  auto paths = {diffevo::detail::sim_path::simt, diffevo::detail::sim_path::mma};
  for (auto path : paths) {
    if (path == diffevo::detail::sim_path::mma && !std::is_same<T, float>::value) continue;
    diffevo::detail::simulate_pairwise_sums<T>(path, x.data(), x.data(), x.data(), logc.data(), 1, n, n, D, D, 0.8,
                                               1.5, true, a2.data(), b2.data(), m2.data());
    std::vector<ld> b1l(b1.begin(), b1.end());
    expect_close(t + " simulated B", b2, b1l, 20 * rtol);
  }
}

// Reference mode on fitness whose sum overflows the dtype (the failing inputs).
template <class T>
void check_overflow(const char* tname, int n, double gmax, ld rtol) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unif;
  const int D = 2;
  std::vector<T> x(n * D), g(n), x0(n * D);
  for (auto& v : x) v = static_cast<T>(normal(rng));
  for (auto& v : g) v = static_cast<T>(unif(rng) < 0.1 ? 0.0 : unif(rng) * gmax);
  g[0] = static_cast<T>(gmax);
  try {
    diffevo::host::x0_estimate<T>(x.data(), g.data(), n, D, 0.5, x0.data());
  } catch (const std::exception& err) {
    expect(false, std::string(tname) + " x0 reference, overflowing fitness: threw " + err.what());
    return;
  }
  expect_close(std::string(tname) + " x0 reference, overflowing fitness", x0,
               oracle_x0(x, g, n, D, 0.5, false, 0, false), rtol);
}

template <class T>
void check_bad_arguments(const char* tname) {
  using namespace diffevo;
  const std::string t = tname;
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> x = {0, 1, 2, 3, 4, 5}, g = {1, 2, 3}, x0(6), z(6, T(0.5)), out(6);
  const T* xp = x.data();
  const T* gp = g.data();
  T* x0p = x0.data();
  auto x0_call = [&](const T* xx, const T* gg, T* oo, std::int64_t n, std::int64_t D, double alpha) {
    return [=] { host::x0_estimate<T>(xx, gg, n, D, alpha, oo); };
  };
  expect_refused(t + " x0 null x", "x", x0_call(nullptr, gp, x0p, 3, 2, 0.5));
  expect_refused(t + " x0 null g", "g", x0_call(xp, nullptr, x0p, 3, 2, 0.5));
  expect_refused(t + " x0 null x0", "x0", x0_call(xp, gp, nullptr, 3, 2, 0.5));
  expect_refused(t + " x0 D = 0", "D", x0_call(xp, gp, x0p, 3, 0, 0.5));
  expect_refused(t + " x0 n = 0", "n", x0_call(xp, gp, x0p, 0, 2, 0.5));
  expect_refused(t + " x0 alpha = 1", "alpha", x0_call(xp, gp, x0p, 3, 2, 1.0));
  expect_refused(t + " x0 alpha NaN", "alpha", x0_call(xp, gp, x0p, 3, 2, std::nan("")));
  expect_refused(t + " x0 latent with dl = 0", "dl",
                 [&] { host::x0_estimate<T>(xp, gp, 3, 2, 0.5, x0p, xp, 0); });
  expect_refused(t + " x0 tiny bandwidth", "bandwidth",
                 [&] { host::x0_estimate<T>(xp, gp, 3, 2, 0.5, x0p, nullptr, 0, density::kde, 1e-160); });
  expect_refused(t + " x0 bad mode", "mode",
                 [&] { host::x0_estimate<T>(xp, gp, 3, 2, 0.5, x0p, nullptr, 0, density::uniform, 0.1, mode(7)); });
  for (T bad : {inf, nan, T(-1)}) {
    std::vector<T> gb = g;
    gb[1] = bad;
    expect_refused(t + " x0 fitness " + std::to_string(static_cast<double>(bad)), "g",
                   [&] { host::x0_estimate<T>(xp, gb.data(), 3, 2, 0.5, x0p); });
  }
  for (T bad : {inf, nan}) {
    std::vector<T> xb = x;
    xb[3] = bad;
    expect_refused(t + " x0 x " + std::to_string(static_cast<double>(bad)), "x",
                   [&] { host::x0_estimate<T>(xb.data(), gp, 3, 2, 0.5, x0p); });
    expect_refused(t + " kde z " + std::to_string(static_cast<double>(bad)), "z",
                   [&] { host::kde_density<T>(xb.data(), 3, 2, 0.5, out.data()); });
    expect_refused(t + " ddim x_t " + std::to_string(static_cast<double>(bad)), "x_t",
                   [&] { host::ddim_step<T>(xb.data(), x0p, z.data(), 6, 0.4, 0.7, 1.0, out.data()); });
  }
  // members so far apart that the squared distances overflow: refused, never NaN
  const T far = std::is_same<T, float>::value ? T(1e30) : T(1e300);
  std::vector<T> xf = {0, 0, far, far, -far, far};
  expect_refused(t + " x0 exact, overflowing distances", "x", [&] {
    host::x0_estimate<T>(xf.data(), gp, 3, 2, 0.5, x0p, nullptr, 0, density::uniform, 0.1, mode::exact);
  });
  expect_refused(t + " kde null z", "z", [&] { host::kde_density<T>(nullptr, 3, 2, 0.5, out.data()); });
  expect_refused(t + " kde null p", "p", [&] { host::kde_density<T>(xp, 3, 2, 0.5, nullptr); });
  expect_refused(t + " kde d = 0", "d", [&] { host::kde_density<T>(xp, 3, 0, 0.5, out.data()); });
  expect_refused(t + " kde bandwidth 0", "bandwidth", [&] { host::kde_density<T>(xp, 3, 2, 0.0, out.data()); });
  auto step = [&](const T* xt, const T* x0c, const T* zz, T* o, double at, double ap, double noise) {
    return [=] { host::ddim_step<T>(xt, x0c, zz, 6, at, ap, noise, o); };
  };
  expect_refused(t + " ddim null x_t", "x_t", step(nullptr, xp, z.data(), out.data(), 0.4, 0.7, 1.0));
  expect_refused(t + " ddim null x0", "x0", step(xp, nullptr, z.data(), out.data(), 0.4, 0.7, 1.0));
  expect_refused(t + " ddim null z with noise", "z", step(xp, xp, nullptr, out.data(), 0.4, 0.7, 1.0));
  expect_refused(t + " ddim null x_prev", "x_prev", step(xp, xp, z.data(), nullptr, 0.4, 0.7, 1.0));
  expect_refused(t + " ddim noise > 1", "noise", step(xp, xp, z.data(), out.data(), 0.4, 0.7, 1.5));
  expect_refused(t + " ddim noise < 0", "noise", step(xp, xp, z.data(), out.data(), 0.4, 0.7, -0.1));
  expect_refused(t + " ddim alpha_prev < alpha_t with noise", "alpha_prev",
                 step(xp, xp, z.data(), out.data(), 0.7, 0.4, 0.5));
  expect_refused(t + " ddim alpha_t = 0", "alpha_t", step(xp, xp, z.data(), out.data(), 0.0, 0.7, 1.0));
  expect_refused(t + " ddim alpha_prev > 1", "alpha_prev", step(xp, xp, z.data(), out.data(), 0.4, 1.5, 1.0));
  // the deterministic step backwards (noise 0) and without z is allowed, as in Python
  host::ddim_step<T>(xp, xp, nullptr, 6, 0.7, 0.4, 0.0, out.data());
  expect(std::isfinite(out[5]), t + " ddim noise 0 backwards");
  std::vector<T> b(3), m(3), lc(3, T(0));
  T* mp = m.data();
  auto sums = [&](const T* q, const T* lcp, T* bp, std::int64_t d) {
    return [=] { host::pairwise_sums<T>(q, q, q, lcp, 1, 3, 3, d, d, 1.0, 1.0, false, x0p, bp, mp); };
  };
  expect_refused(t + " sums null q", "q", sums(nullptr, lc.data(), b.data(), 2));
  expect_refused(t + " sums null logc", "logc", sums(xp, nullptr, b.data(), 2));
  expect_refused(t + " sums null b", "b", sums(xp, lc.data(), nullptr, 2));
  expect_refused(t + " sums negative d", "extents", sums(xp, lc.data(), b.data(), -1));
  expect_refused(t + " sums inv2sigma2 inf", "inv2sigma2", [&] {
    host::pairwise_sums<T>(xp, xp, xp, lc.data(), 1, 3, 3, 2, 2, 1.0, HUGE_VAL, false, x0p, b.data(), m.data());
  });
}

}  // namespace

int main() {
  check_normal_calls<double>("float64", 1e-12L);
  check_normal_calls<float>("float32", 2e-5L);
  check_overflow<float>("float32", 512, 1e37, 2e-5L);
  check_overflow<double>("float64", 64, 1e307, 1e-12L);
  check_bad_arguments<double>("float64");
  check_bad_arguments<float>("float32");
  std::printf("host_api_check: %d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
