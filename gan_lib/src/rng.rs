//! The project's one source of randomness.
//!
//! candle's CPU random tensors cannot be seeded, so every random number a run uses (weight
//! init, shuffling, latent noise, dropout masks, augmentation) comes from a [`Rng`] seeded by
//! the user, and tensors are built from its draws with `Tensor::from_vec`. ChaCha8 is portable
//! (same stream on every platform) and serialisable, so a checkpoint can store its state.

use candle_core::{Device, Result, Shape, Tensor};
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The seeded random number generator used everywhere in this crate.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// A tensor of independent N(mean, std²) draws, in f32.
pub fn randn(
    rng: &mut Rng,
    shape: impl Into<Shape>,
    mean: f32,
    std: f32,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let values: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            let z: f32 = StandardNormal.sample(rng);
            mean + std * z
        })
        .collect();
    Tensor::from_vec(values, shape, device)
}

/// A tensor of independent U(low, high) draws, in f32.
pub fn uniform(
    rng: &mut Rng,
    shape: impl Into<Shape>,
    low: f32,
    high: f32,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let values: Vec<f32> = (0..shape.elem_count())
        .map(|_| rng.random_range(low..high))
        .collect();
    Tensor::from_vec(values, shape, device)
}

/// An inverted-dropout mask: each element is 0 with probability `p`, else 1/(1-p), so that the
/// masked values keep their expected value. One 32-bit draw per element, dropped when below
/// `p·2³²`; drawn in one bulk fill (a float in a range per element took 4% of a DCGAN step).
pub fn dropout_mask(
    rng: &mut Rng,
    shape: impl Into<Shape>,
    p: f32,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let scale = 1.0 / (1.0 - p);
    let threshold = (f64::from(p) * 4_294_967_296.0) as u64;
    let mut draws = vec![0u32; shape.elem_count()];
    rng.fill(&mut draws[..]);
    let values: Vec<f32> = draws
        .iter()
        .map(|&d| if u64::from(d) < threshold { 0.0 } else { scale })
        .collect();
    Tensor::from_vec(values, shape, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let a = randn(&mut seeded(7), (4, 5), 0.0, 1.0, &Device::Cpu).unwrap();
        let b = randn(&mut seeded(7), (4, 5), 0.0, 1.0, &Device::Cpu).unwrap();
        let c = randn(&mut seeded(8), (4, 5), 0.0, 1.0, &Device::Cpu).unwrap();
        let (a, b, c) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            c.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn dropout_mask_drops_a_fraction_p_and_keeps_the_mean() {
        for p in [0.0, 0.3, 0.9] {
            let mask = dropout_mask(&mut seeded(3), 100_000, p, &Device::Cpu).unwrap();
            let v = mask.to_vec1::<f32>().unwrap();
            let dropped = v.iter().filter(|&&m| m == 0.0).count() as f32 / v.len() as f32;
            assert!((dropped - p).abs() < 0.01, "p {p}: dropped {dropped}");
            assert!(v.iter().all(|&m| m == 0.0 || m == 1.0 / (1.0 - p)));
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            assert!((mean - 1.0).abs() < 0.05, "p {p}: mean {mean}");
        }
        let other = dropout_mask(&mut seeded(4), 1000, 0.5, &Device::Cpu).unwrap();
        let same = dropout_mask(&mut seeded(3), 1000, 0.5, &Device::Cpu).unwrap();
        assert_ne!(
            other.to_vec1::<f32>().unwrap(),
            same.to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn uniform_stays_in_range() {
        let t = uniform(&mut seeded(1), 1000, -0.5, 0.25, &Device::Cpu).unwrap();
        let v = t.to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| (-0.5..0.25).contains(x)));
        // Spread over the whole range, not a constant or a corner of it.
        let (min, max) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(min < -0.49 && max > 0.24, "range {min}..{max}");
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean + 0.125).abs() < 0.02, "mean {mean}");
        let below_middle = v.iter().filter(|&&x| x < -0.125).count();
        assert!(
            (450..550).contains(&below_middle),
            "{below_middle} of 1000 below the middle"
        );
    }
}
