//! Latent walks: digits drawn along a path between two noise vectors (linear, or spherical,
//! which keeps Gaussian noise at the lengths the generator saw in training), or, for a
//! conditional generator, from one digit to another with the noise held. Each step's noise is
//! the one [`Generator::draw`] draws for a seed, so a walk starts and ends at the
//! digits `sample --seed A` and `--seed B` draw.

use std::str::FromStr;

use candle_core::{Device, Result, Tensor};

use crate::data::{self, CLASSES};
use crate::models::Generator;
use crate::plot::{self, Picture};

/// How a walk goes from one noise vector to the other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interpolation {
    /// Along the straight line: `(1 − t)·a + t·b`.
    Linear,
    /// Along the great circle (slerp, Shoemake 1985; White 2016 for GANs): midpoints keep
    /// the length of typical Gaussian noise, where a straight line passes through shorter,
    /// untypical vectors.
    #[default]
    Spherical,
}

impl FromStr for Interpolation {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Interpolation, String> {
        match text {
            "linear" | "lerp" => Ok(Interpolation::Linear),
            "spherical" | "slerp" => Ok(Interpolation::Spherical),
            other => Err(format!(
                "unknown interpolation {other:?}: linear (lerp) or spherical (slerp)"
            )),
        }
    }
}

/// The point at `t` (0 gives `a`, 1 gives `b`, exactly) between two vectors.
pub fn interpolate(a: &[f32], b: &[f32], t: f64, mode: Interpolation) -> Vec<f32> {
    let (wa, wb) = match mode {
        Interpolation::Linear => (1.0 - t, t),
        Interpolation::Spherical => {
            let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            let cos = (dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)).clamp(-1.0, 1.0);
            let angle = cos.acos();
            if angle.sin().abs() < 1e-6 {
                // (Anti)parallel vectors: no great circle is singled out.
                (1.0 - t, t)
            } else {
                let sin = angle.sin();
                (((1.0 - t) * angle).sin() / sin, (t * angle).sin() / sin)
            }
        }
    };
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (wa * x as f64 + wb * y as f64) as f32)
        .collect()
}

/// The noise vector [`Generator::draw`] draws first for `seed`: `(latent,)` values.
pub fn noise_for_seed(latent_dim: usize, seed: u64, device: &Device) -> Result<Vec<f32>> {
    let mut rng = crate::rng::seeded(seed);
    crate::rng::randn(&mut rng, (1, latent_dim), 0.0, 1.0, device)?
        .flatten_all()?
        .to_vec1::<f32>()
}

/// Digits along a walk, `steps` of them, as bytes image after image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// 28x28 bytes per step (0 black, 255 white).
    pub pixels: Vec<u8>,
    /// Steps, both ends included.
    pub steps: usize,
}

impl Walk {
    /// The walk as one strip, 2x enlarged.
    pub fn strip(&self) -> Picture {
        plot::upscale(&plot::grid(&self.pixels, self.steps, 2), 2)
    }
}

fn check_steps(steps: usize) -> Result<()> {
    if !(2..=100).contains(&steps) {
        candle_core::bail!("a walk takes 2 to 100 steps, not {steps}");
    }
    Ok(())
}

fn check_digit(generator: &Generator, digit: u8) -> Result<()> {
    if !generator.is_conditional() {
        candle_core::bail!(
            "this generator is unconditional (model.conditional = false): it cannot be asked for a digit"
        );
    }
    if digit as usize >= CLASSES {
        candle_core::bail!("digit {digit} does not exist: digits are 0 to 9");
    }
    Ok(())
}

/// Walks from the noise of `from_seed` to that of `to_seed` in `steps` steps. A conditional
/// generator draws `digit` all along (it needs one; an unconditional one takes none).
pub fn noise_walk(
    generator: &Generator,
    (from_seed, to_seed): (u64, u64),
    steps: usize,
    mode: Interpolation,
    digit: Option<u8>,
    device: &Device,
) -> Result<Walk> {
    check_steps(steps)?;
    let labels = match digit {
        Some(digit) => {
            check_digit(generator, digit)?;
            Some(Tensor::from_vec(vec![digit as u32; steps], steps, device)?)
        }
        None if generator.is_conditional() => {
            candle_core::bail!("a conditional generator needs the digit to draw along the walk")
        }
        None => None,
    };
    let latent = generator.latent_dim();
    let (a, b) = (
        noise_for_seed(latent, from_seed, device)?,
        noise_for_seed(latent, to_seed, device)?,
    );
    let z: Vec<f32> = (0..steps)
        .flat_map(|i| interpolate(&a, &b, i as f64 / (steps - 1) as f64, mode))
        .collect();
    let z = Tensor::from_vec(z, (steps, latent), device)?;
    Ok(Walk {
        pixels: data::to_bytes(&generator.generate(&z, labels.as_ref())?)?,
        steps,
    })
}

/// Walks a conditional generator from digit `from` to digit `to` with the noise of `seed`
/// held: the label vector moves linearly between the two one-hot vectors.
pub fn digit_walk(
    generator: &Generator,
    seed: u64,
    (from, to): (u8, u8),
    steps: usize,
    device: &Device,
) -> Result<Walk> {
    check_steps(steps)?;
    check_digit(generator, from)?;
    check_digit(generator, to)?;
    let one_hot = |digit: u8| -> Vec<f32> {
        (0..CLASSES)
            .map(|d| f32::from(d == digit as usize))
            .collect()
    };
    let labels: Vec<f32> = (0..steps)
        .flat_map(|i| {
            let t = i as f64 / (steps - 1) as f64;
            interpolate(&one_hot(from), &one_hot(to), t, Interpolation::Linear)
        })
        .collect();
    let labels = Tensor::from_vec(labels, (steps, CLASSES), device)?;
    let noise = noise_for_seed(generator.latent_dim(), seed, device)?;
    let z = Tensor::from_vec(noise.repeat(steps), (steps, generator.latent_dim()), device)?;
    Ok(Walk {
        pixels: data::to_bytes(&generator.generate(&z, Some(&labels))?)?,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_ends_at_its_endpoints_and_slerp_keeps_length() {
        let a = [1.0f32, 0.0, 2.0];
        let b = [0.0f32, 3.0, -1.0];
        for mode in [Interpolation::Linear, Interpolation::Spherical] {
            assert_eq!(interpolate(&a, &b, 0.0, mode), a.to_vec(), "{mode:?}");
            assert_eq!(interpolate(&a, &b, 1.0, mode), b.to_vec(), "{mode:?}");
        }
        // Orthogonal unit vectors: slerp's midpoint has length 1, lerp's 1/√2.
        let (x, y) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        let length = |v: Vec<f32>| v.iter().map(|c| c * c).sum::<f32>().sqrt();
        let slerp = length(interpolate(&x, &y, 0.5, Interpolation::Spherical));
        let lerp = length(interpolate(&x, &y, 0.5, Interpolation::Linear));
        assert!((slerp - 1.0).abs() < 1e-6, "{slerp}");
        assert!((lerp - 0.5f32.sqrt()).abs() < 1e-6, "{lerp}");
        assert_eq!("slerp".parse(), Ok(Interpolation::Spherical));
        assert!("cubic".parse::<Interpolation>().is_err());
    }
}
