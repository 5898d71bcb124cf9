//! How close to the machine: the CPU's FP32 peak, measured by a loop of fused multiply-adds on
//! registers (no memory traffic), and the vector extension the matmul kernels use.

use std::time::Instant;

/// Whether this build's `gemm` lacks its AVX-512 kernels: `scripts/bench-avx2.sh` builds
/// the benchmark so (with `--cfg mnist_gan_avx2_only`), to measure an AVX2-only machine on
/// an AVX-512 one.
pub const AVX2_ONLY_BUILD: bool = cfg!(mnist_gan_avx2_only);

/// The widest vector extension this CPU offers that the kernels use: `gemm` (built with
/// `x86-v4`) picks its AVX-512 microkernels at run time when the CPU has them, else AVX2+FMA.
pub fn vector_extension() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && !AVX2_ONLY_BUILD {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2+FMA";
        }
    }
    "no AVX2"
}

/// FP32 GFLOP/s of `threads` threads each running independent fused multiply-adds for about
/// `seconds`, with `extension` ("AVX-512" or "AVX2+FMA"; AVX2 on an AVX-512 machine gives the
/// ceiling of an AVX2-only one at the same clock); `None` when the CPU lacks it.
pub fn fp32_peak_gflops(extension: &str, threads: usize, seconds: f64) -> Option<f64> {
    const ROUNDS: u64 = 1 << 20;
    let available = match vector_extension() {
        "AVX-512" => ["AVX-512", "AVX2+FMA"].contains(&extension),
        "AVX2+FMA" => extension == "AVX2+FMA",
        _ => false,
    };
    if !available {
        return None;
    }
    let (fma_flops, run): (f64, fn(u64) -> f32) = match extension {
        #[cfg(target_arch = "x86_64")]
        "AVX-512" => (32.0, |rounds| unsafe { fma_loop_avx512(rounds) }),
        #[cfg(target_arch = "x86_64")]
        "AVX2+FMA" => (16.0, |rounds| unsafe { fma_loop_avx2(rounds) }),
        _ => return None,
    };
    // Calibrate on one thread: rounds for the asked time.
    let started = Instant::now();
    std::hint::black_box(run(ROUNDS));
    let per_round = started.elapsed().as_secs_f64() / ROUNDS as f64;
    let rounds = ((seconds / per_round) as u64).max(ROUNDS);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(move || std::hint::black_box(run(rounds)));
        }
    });
    let flops = threads as f64 * rounds as f64 * ACCUMULATORS as f64 * fma_flops;
    Some(flops / started.elapsed().as_secs_f64() / 1e9)
}

/// Independent accumulators: enough to keep two FMA units busy through a 4-cycle latency.
const ACCUMULATORS: usize = 12;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(rounds: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
    for _ in 0..rounds {
        for value in acc.iter_mut() {
            *value = _mm512_fmadd_ps(*value, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v));
    _mm512_reduce_add_ps(sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(rounds: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
    for _ in 0..rounds {
        for value in acc.iter_mut() {
            *value = _mm256_fmadd_ps(*value, a, b);
        }
    }
    let mut lanes = [0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}
