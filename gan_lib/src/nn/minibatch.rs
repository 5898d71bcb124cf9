//! What a discriminator can see of a whole batch: the minibatch standard deviation (Karras et
//! al. 2018, ProGAN) and packing (Lin et al. 2018, PacGAN). Both let D notice a generator that
//! draws too little variety, which no judgement of one image at a time can.

use candle_core::{Result, Tensor};

/// `(b, n)` features → `(b, n + 1)`: the same features and, in every row, the standard
/// deviation of each feature across the batch, averaged over the features. A batch of fakes
/// that vary less than real digits gets a smaller value, which D's next layer can weigh.
pub fn append_minibatch_std(features: &Tensor) -> Result<Tensor> {
    let (b, _) = features.dims2()?;
    let centred = features.broadcast_sub(&features.mean_keepdim(0)?)?;
    // The epsilon keeps the square root's gradient finite for a batch of one image.
    let std = (centred.sqr()?.mean_keepdim(0)? + 1e-8)?.sqrt()?;
    let std = std.mean_all()?.reshape((1, 1))?.broadcast_as((b, 1))?;
    Tensor::cat(&[features, &std], 1)
}

/// `(b, 1, h, w)` images → `(b / pack, pack, h, w)`: every `pack` consecutive images become the
/// channels of one input, judged together.
pub fn pack_images(images: &Tensor, pack: usize) -> Result<Tensor> {
    let (b, c, h, w) = images.dims4()?;
    if pack == 1 {
        return Ok(images.clone());
    }
    if c != 1 || b % pack != 0 {
        candle_core::bail!(
            "a discriminator packing {pack} images needs a batch of single-channel images divisible by {pack}, not {b} images of {c} channels"
        );
    }
    images.reshape((b / pack, pack, h, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn minibatch_std_appends_the_mean_standard_deviation_to_every_row() -> Result<()> {
        let x = Tensor::new(&[[1f32, 10.0], [3.0, 10.0], [5.0, 16.0]], &Device::Cpu)?;
        let y = append_minibatch_std(&x)?;
        assert_eq!(y.dims(), &[3, 3]);
        // Population standard deviations: 1.633 and 2.828; their mean 2.231.
        let expected = ((8f32 / 3.0).sqrt() + 8f32.sqrt()) / 2.0;
        for row in y.to_vec2::<f32>()? {
            assert!((row[2] - expected).abs() < 1e-5, "{row:?}");
        }
        assert_eq!(y.narrow(1, 0, 2)?.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn minibatch_std_gradient_matches_finite_differences() -> Result<()> {
        let values = [0.3f32, -1.2, 0.7, 2.0, -0.4, 0.9, 1.1, -0.8];
        let x = Var::new(&values, &Device::Cpu)?;
        let w = Tensor::new(&[0.5f32, -0.25, 2.0], &Device::Cpu)?.reshape((3, 1))?;
        let loss = |x: &Tensor| -> Result<Tensor> {
            append_minibatch_std(&x.reshape((4, 2))?)?
                .matmul(&w)?
                .sqr()?
                .sum_all()
        };
        let grads = loss(x.as_tensor())?.backward()?;
        let analytic = grads
            .get(x.as_tensor())
            .expect("gradient")
            .to_vec1::<f32>()?;
        let h = 1e-2f32;
        for i in 0..values.len() {
            let shifted = |d: f32| -> Result<f32> {
                let mut v = values;
                v[i] += d;
                loss(&Tensor::new(&v, &Device::Cpu)?)?.to_scalar::<f32>()
            };
            let numeric = (shifted(h)? - shifted(-h)?) / (2.0 * h);
            assert!(
                (numeric - analytic[i]).abs() < 2e-2 * (1.0 + numeric.abs()),
                "value {i}: finite differences {numeric}, autograd {}",
                analytic[i]
            );
        }
        Ok(())
    }

    #[test]
    fn packing_stacks_consecutive_images_as_channels() -> Result<()> {
        let images = Tensor::arange(0f32, 4.0 * 4.0, &Device::Cpu)?.reshape((4, 1, 2, 2))?;
        let packed = pack_images(&images, 2)?;
        assert_eq!(packed.dims(), &[2, 2, 2, 2]);
        let first = packed.get(0)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(first, (0..8).map(|v| v as f32).collect::<Vec<_>>());
        assert!(pack_images(&images.narrow(0, 0, 3)?, 2).is_err());
        assert_eq!(pack_images(&images, 1)?.dims(), &[4, 1, 2, 2]);
        Ok(())
    }
}
