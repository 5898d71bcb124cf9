//! BatchNorm in training mode as one pass forwards and one backwards.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{for_parts, values, Planes};

/// BatchNorm in training mode over dimension 1 of `x`, with the batch's statistics, then a
/// leaky ReLU when `slope` is given, as one custom op each way. Returns the output and the
/// batch's mean and (biased) variance per channel, for the running statistics.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    slope: Option<f64>,
) -> Result<(Tensor, BatchStatistics)> {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = BatchNormTrain {
        eps: eps as f32,
        slope: slope.map(|s| s as f32),
        stats: stats.clone(),
    };
    let y = x.contiguous()?.apply_op3(weight, bias, op)?;
    let stats = stats.lock().expect("batch-norm statistics");
    Ok((
        y,
        BatchStatistics {
            mean: stats.mean.clone(),
            variance: stats.variance.clone(),
        },
    ))
}

/// A batch's per-channel mean and biased variance.
pub(crate) struct BatchStatistics {
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
}

/// Per-channel statistics of the last batch.
#[derive(Clone, Debug, Default)]
struct Stats {
    mean: Vec<f32>,
    /// Biased (divided by the count), as used to normalise.
    variance: Vec<f32>,
    /// Per channel, the output before the activation is `x·scale + shift`.
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// 1 where `y` > 0, else `slope`: a leaky ReLU is `y` times it, and so is its derivative's
/// effect on a gradient. Branch-free, so that the loops around it vectorise (a branch per value
/// made BatchNorm 4 times slower), and a NaN stays NaN, as in the separate activation op.
fn leaky_factor(y: f32, slope: f32) -> f32 {
    let positive = f32::from(u8::from(y > 0.0));
    positive + (1.0 - positive) * slope
}

/// (x, γ, β) → γ·(x − mean)/√(var + eps) + β with the batch's mean and variance, then a
/// leaky ReLU when `slope` is given.
struct BatchNormTrain {
    eps: f32,
    slope: Option<f32>,
    stats: Arc<Mutex<Stats>>,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let (gamma, beta) = (values(s2, l2, self.name())?, values(s3, l3, self.name())?);
        let p = Planes::of(l1.shape())?;
        let count = (p.n * p.plane) as f64;
        let plane = |offset: usize| &x[offset..offset + p.plane];
        let mean: Vec<f32> = p
            .channel_sums(|_, at| [plane(at).iter().sum::<f32>()])
            .iter()
            .map(|[sum]| (sum / count) as f32)
            .collect();
        let variance: Vec<f32> = p
            .channel_sums(|ch, at| {
                [plane(at)
                    .iter()
                    .map(|&v| (v - mean[ch]) * (v - mean[ch]))
                    .sum::<f32>()]
            })
            .iter()
            .map(|[sum]| (sum / count) as f32)
            .collect();
        let scale: Vec<f32> = (0..p.c)
            .map(|ch| gamma[ch] / (variance[ch] + self.eps).sqrt())
            .collect();
        let shift: Vec<f32> = (0..p.c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
        // Without an activation the slope is 1: y·1 is y, to the bit.
        let slope = self.slope.unwrap_or(1.0);
        let mut y = vec![0f32; x.len()];
        for_parts(&mut y, p.c * p.plane, |b, image| {
            for (ch, out) in image.chunks_mut(p.plane).enumerate() {
                let source = plane((b * p.c + ch) * p.plane);
                let (scale, shift) = (scale[ch], shift[ch]);
                for (o, &v) in out.iter_mut().zip(source) {
                    let y = v * scale + shift;
                    *o = y * leaky_factor(y, slope);
                }
            }
        });
        *self.stats.lock().expect("batch-norm statistics") = Stats {
            mean,
            variance,
            scale,
            shift,
        };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = gamma.elem_count();
        let stats = self.stats.lock().expect("batch-norm statistics").clone();
        let packed = x.apply_op3(
            gamma,
            &grad.contiguous()?,
            BatchNormGrad {
                eps: self.eps,
                slope: self.slope,
                stats,
            },
        )?;
        let n = x.elem_count();
        Ok((
            Some(packed.narrow(0, 0, n)?.reshape(x.shape())?),
            Some(packed.narrow(0, n, c)?),
            Some(packed.narrow(0, n + c, c)?),
        ))
    }
}

/// (x, γ, dy) → [dx, dγ, dβ] packed in one vector (a custom op has one output); through the
/// activation first when `slope` is given.
struct BatchNormGrad {
    eps: f32,
    slope: Option<f32>,
    stats: Stats,
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let gamma = values(s2, l2, self.name())?;
        let dy = values(s3, l3, self.name())?;
        let p = Planes::of(l1.shape())?;
        let count = (p.n * p.plane) as f32;
        let Stats {
            mean, scale, shift, ..
        } = &self.stats;
        // dy through the activation, from the pre-activation value as the forward pass had it
        // (without an activation the slope is 1, and g·1 is g).
        let slope = self.slope.unwrap_or(1.0);
        let d_pre =
            |(scale, shift): (f32, f32), v: f32, g: f32| g * leaky_factor(v * scale + shift, slope);
        let inv_std: Vec<f32> = self
            .stats
            .variance
            .iter()
            .map(|v| 1.0 / (v + self.eps).sqrt())
            .collect();
        let sums = p.channel_sums(|ch, at| {
            let (xs, gs) = (&x[at..at + p.plane], &dy[at..at + p.plane]);
            let (affine, mean) = ((scale[ch], shift[ch]), mean[ch]);
            let mut sums = [0f32; 2];
            for (&v, &g) in xs.iter().zip(gs) {
                let g = d_pre(affine, v, g);
                sums[0] += g;
                sums[1] += g * (v - mean);
            }
            sums
        });
        // dβ = Σdy, dγ = Σ dy·x̂
        let d_beta: Vec<f32> = sums.iter().map(|s| s[0] as f32).collect();
        let d_gamma: Vec<f32> = sums
            .iter()
            .zip(&inv_std)
            .map(|(s, &i)| s[1] as f32 * i)
            .collect();
        let mut out = vec![0f32; x.len() + 2 * p.c];
        let (d_x, d_params) = out.split_at_mut(x.len());
        // dx = γ/(σ·m) · (m·dy − Σdy − x̂·Σ(dy·x̂))
        for_parts(d_x, p.c * p.plane, |b, image| {
            for (ch, out) in image.chunks_mut(p.plane).enumerate() {
                let at = (b * p.c + ch) * p.plane;
                let affine = (scale[ch], shift[ch]);
                let (mean, inv_std) = (mean[ch], inv_std[ch]);
                let (d_beta, d_gamma) = (d_beta[ch], d_gamma[ch]);
                let scale = gamma[ch] * inv_std / count;
                for ((o, &v), &g) in out.iter_mut().zip(&x[at..]).zip(&dy[at..]) {
                    let g = d_pre(affine, v, g);
                    let x_hat = (v - mean) * inv_std;
                    *o = scale * (count * g - d_beta - x_hat * d_gamma);
                }
            }
        });
        d_params[..p.c].copy_from_slice(&d_gamma);
        d_params[p.c..].copy_from_slice(&d_beta);
        let len = out.len();
        Ok((CpuStorage::F32(out), len.into()))
    }
}

/// BatchNorm in evaluation mode, with the running statistics, then a leaky ReLU when `slope`
/// is given, as one pass each way. The values are those of candle's BatchNorm
/// (`(x − mean) / √(var + eps) · γ + β`, in that order) followed by the activation op, to the
/// bit: generation and scoring run it on every hidden layer, where candle's four broadcast ops
/// and the activation each wrote a new tensor. The gradient flows to `x` only (evaluation
/// trains nothing; a latent search differentiates through it).
pub(crate) fn batch_norm_eval(
    x: &Tensor,
    (mean, variance): (&Tensor, &Tensor),
    (weight, bias): (&Tensor, &Tensor),
    eps: f64,
    slope: Option<f64>,
) -> Result<Tensor> {
    let values = |t: &Tensor| t.to_vec1::<f32>();
    let eps = eps as f32;
    let channels = Arc::new(EvalChannels {
        mean: values(mean)?,
        deviation: values(variance)?
            .iter()
            .map(|&v| (v + eps).sqrt())
            .collect(),
        weight: values(weight)?,
        bias: values(bias)?,
        slope: slope.unwrap_or(1.0) as f32,
    });
    x.contiguous()?.apply_op1(BatchNormEval(channels))
}

/// Per channel: the running mean, `√(var + eps)`, γ and β; and the activation's slope (1:
/// none).
struct EvalChannels {
    mean: Vec<f32>,
    deviation: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    slope: f32,
}

impl EvalChannels {
    /// `out = f(channel constants, x)` over `(n, c, plane)` values, by image on rayon's threads
    /// when large; with one value per channel the loop runs along the channels.
    fn map(
        &self,
        shape: &Shape,
        x: &[f32],
        f: impl Fn(&[f32; 4], f32, f32) -> f32 + Sync,
        other: &[f32],
    ) -> Result<Vec<f32>> {
        let p = Planes::of(shape)?;
        if p.c != self.mean.len() {
            candle_core::bail!(
                "batch-norm: {} channels, the input has {}",
                self.mean.len(),
                p.c
            );
        }
        let mut out = vec![0f32; x.len()];
        let channel = |ch: usize| {
            [
                self.mean[ch],
                self.deviation[ch],
                self.weight[ch],
                self.bias[ch],
            ]
        };
        let constants: Vec<[f32; 4]> = (0..p.c).map(channel).collect();
        let image_len = p.c * p.plane;
        for_parts(&mut out, image_len, |b, image| {
            let at = b * image_len;
            let (x, other) = (&x[at..at + image_len], &other[at..at + image_len]);
            if p.plane == 1 {
                for (((o, &v), &w), k) in image.iter_mut().zip(x).zip(other).zip(&constants) {
                    *o = f(k, v, w);
                }
                return;
            }
            for (ch, out) in image.chunks_mut(p.plane).enumerate() {
                let (k, at) = (&constants[ch], ch * p.plane);
                let (x, other) = (&x[at..at + p.plane], &other[at..at + p.plane]);
                for ((o, &v), &w) in out.iter_mut().zip(x).zip(other) {
                    *o = f(k, v, w);
                }
            }
        });
        Ok(out)
    }
}

/// x → leaky_relu((x − mean) / deviation · γ + β), per channel.
struct BatchNormEval(Arc<EvalChannels>);

impl CustomOp1 for BatchNormEval {
    fn name(&self) -> &'static str {
        "batch-norm-eval"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let slope = self.0.slope;
        let y = self.0.map(
            layout.shape(),
            x,
            |&[mean, deviation, weight, bias], v, _| {
                let y = (v - mean) / deviation * weight + bias;
                y * leaky_factor(y, slope)
            },
            x,
        )?;
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(y.apply_op2(&grad, BatchNormEvalGrad(self.0.clone()))?))
    }
}

/// (y, dy) → dx = dy · (1 if y > 0 else slope) · γ / deviation, in the order candle's ops
/// multiply and divide.
struct BatchNormEvalGrad(Arc<EvalChannels>);

impl CustomOp2 for BatchNormEvalGrad {
    fn name(&self) -> &'static str {
        "batch-norm-eval-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, grad) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        if y.len() != grad.len() {
            candle_core::bail!("{}: {:?} and {:?}", self.name(), l1.shape(), l2.shape());
        }
        let slope = self.0.slope;
        let d_x = self.0.map(
            l1.shape(),
            y,
            |&[_, deviation, weight, _], y, g| g * leaky_factor(y, slope) * weight / deviation,
            grad,
        )?;
        Ok((CpuStorage::F32(d_x), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::BatchNorm;
    use candle_core::{DType, Device, ModuleT, Var};
    use candle_nn::{BatchNormConfig, VarBuilder, VarMap};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .unwrap()
    }

    /// BatchNorm with its activation fused gives the two ops' values and gradients to the bit,
    /// on the serial and the parallel paths.
    #[test]
    fn batch_norm_with_activation_equals_the_two_ops() -> Result<()> {
        crate::ops::two_threads(|| {
            for shape in [vec![16, 5], vec![32, 8, 12, 12]] {
                for slope in [0.0, 0.2] {
                    let vars = VarMap::new();
                    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
                    let norm = BatchNorm::new(shape[1], vb)?;
                    let mut rng = crate::rng::seeded(4);
                    let x = &crate::rng::randn(&mut rng, &shape[..], 0.5, 2.0, &Device::Cpu)?;
                    let x = Var::from_tensor(x)?;
                    let probe = crate::rng::randn(&mut rng, &shape[..], 0.0, 1.0, &Device::Cpu)?;
                    let fused = norm.forward_leaky(&x, true, Some(slope))?;
                    let apart =
                        crate::ops::pointwise::leaky_relu(&norm.forward_t(&x, true)?, slope)?;
                    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
                    assert_eq!(flat(&fused)?, flat(&apart)?, "{shape:?}, slope {slope}");
                    // A NaN (a diverging run) stays NaN, so that the trainer can stop on it.
                    let nan = (x.as_tensor() * f64::NAN)?;
                    let nan_out = flat(&norm.forward_leaky(&nan, true, Some(slope))?)?;
                    assert!(
                        nan_out.iter().all(|v| v.is_nan()),
                        "{shape:?}, slope {slope}"
                    );
                    let g_fused = (fused * &probe)?.sum_all()?.backward()?;
                    let g_apart = (apart * &probe)?.sum_all()?.backward()?;
                    let (w, b) = norm.candle.weight_and_bias().unwrap();
                    for t in [x.as_tensor(), w, b] {
                        let (a, b) = (g_fused.get(t).unwrap(), g_apart.get(t).unwrap());
                        assert_eq!(flat(a)?, flat(b)?, "{shape:?}, slope {slope}");
                    }
                }
            }
            Ok(())
        })
    }

    /// In evaluation mode the fused op gives candle's BatchNorm followed by the activation op to
    /// the bit, values and the gradient to the input, on the serial and the parallel paths.
    #[test]
    fn batch_norm_in_evaluation_equals_candles_ops() -> Result<()> {
        crate::ops::two_threads(|| {
            for shape in [
                vec![16, 5],
                vec![600, 256],
                vec![4, 3, 5, 5],
                vec![32, 8, 12, 12],
            ] {
                for slope in [None, Some(0.0), Some(0.2)] {
                    let vars = VarMap::new();
                    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
                    let norm = BatchNorm::new(shape[1], vb)?;
                    let mut rng = crate::rng::seeded(5);
                    let x = &crate::rng::randn(&mut rng, &shape[..], 0.5, 2.0, &Device::Cpu)?;
                    // Running statistics away from 0 and 1, and a γ and β of their own.
                    norm.forward_t(x, true)?;
                    let (w, b) = norm.candle.weight_and_bias().unwrap();
                    let c = shape[1];
                    for (t, mean) in [(w, 1.0), (b, 0.0)] {
                        let new = crate::rng::randn(&mut rng, c, mean, 0.5, &Device::Cpu)?;
                        vars.data()
                            .lock()
                            .unwrap()
                            .values()
                            .find(|v| v.as_tensor().id() == t.id())
                            .unwrap()
                            .set(&new)?;
                    }
                    let x = Var::from_tensor(x)?;
                    let probe = crate::rng::randn(&mut rng, &shape[..], 0.0, 1.0, &Device::Cpu)?;
                    let fused = norm.forward_leaky(&x, false, slope)?;
                    let candle = norm.candle.forward_t(&x, false)?;
                    let apart = match slope {
                        Some(slope) => crate::ops::pointwise::leaky_relu(&candle, slope)?,
                        None => candle,
                    };
                    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
                    assert_eq!(flat(&fused)?, flat(&apart)?, "{shape:?}, slope {slope:?}");
                    let g_fused = (fused * &probe)?.sum_all()?.backward()?;
                    let g_apart = (apart * &probe)?.sum_all()?.backward()?;
                    let (a, b) = (g_fused.get(&x).unwrap(), g_apart.get(&x).unwrap());
                    assert_eq!(flat(a)?, flat(b)?, "{shape:?}, slope {slope:?}");
                }
            }
            Ok(())
        })
    }

    /// Output, gradients and running statistics equal candle's BatchNorm, for 2-D and 4-D
    /// inputs.
    #[test]
    fn batch_norm_matches_candle() -> Result<()> {
        crate::ops::two_threads(batch_norm_matches_candle_inner)
    }

    fn batch_norm_matches_candle_inner() -> Result<()> {
        // The last two are large enough for the multi-threaded paths.
        for shape in [
            vec![16, 5],
            vec![4, 3, 5, 5],
            vec![128, 300],
            vec![32, 8, 12, 12],
        ] {
            let mut vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
            let ours = BatchNorm::new(shape[1], vb.pp("ours"))?;
            let theirs =
                candle_nn::batch_norm(shape[1], BatchNormConfig::default(), vb.pp("theirs"))?;
            let mut rng = crate::rng::seeded(3);
            let gamma = crate::rng::randn(&mut rng, shape[1], 1.0, 0.3, &Device::Cpu)?;
            for bn in ["ours", "theirs"] {
                vars.set_one(format!("{bn}.weight"), &gamma)?;
            }
            let x = Var::from_tensor(&crate::rng::randn(
                &mut rng,
                &shape[..],
                2.0,
                3.0,
                &Device::Cpu,
            )?)?;
            let probe = crate::rng::randn(&mut rng, &shape[..], 0.0, 1.0, &Device::Cpu)?;
            let y_ours = ours.forward_t(&x, true)?;
            let y_theirs = theirs.forward_t(&x, true)?;
            assert!(max_diff(&y_ours, &y_theirs) < 1e-4);
            let g_ours = (y_ours * &probe)?.sum_all()?.backward()?;
            let g_theirs = (y_theirs * &probe)?.sum_all()?.backward()?;
            let (w_ours, b_ours) = ours.candle.weight_and_bias().unwrap();
            let (w_theirs, b_theirs) = theirs.weight_and_bias().unwrap();
            for (a, b) in [
                (x.as_tensor(), x.as_tensor()),
                (w_ours, w_theirs),
                (b_ours, b_theirs),
            ] {
                let diff = max_diff(g_ours.get(a).unwrap(), g_theirs.get(b).unwrap());
                assert!(diff < 1e-3, "{shape:?}: gradient differs by {diff}");
            }
            assert!(max_diff(ours.candle.running_mean(), theirs.running_mean()) < 1e-5);
            assert!(max_diff(ours.candle.running_var(), theirs.running_var()) < 1e-4);
            let eval_diff = max_diff(&ours.forward_t(&x, false)?, &theirs.forward_t(&x, false)?);
            assert!(eval_diff < 1e-5);
        }
        Ok(())
    }
}
