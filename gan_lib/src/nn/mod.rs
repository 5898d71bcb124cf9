//! The building blocks models are made of, in the style of candle-nn: each layer is a struct
//! built by `new(..., vb: VarBuilder)` that names its tensors like PyTorch's, with a
//! `forward`. On the CPU the heavy ones (linear, convolutions, BatchNorm with its activation,
//! activation with dropout) run as fused kernels with their own backward passes, checked
//! against candle's layers value for value and gradient for gradient; on other devices they
//! are candle's own. Seeded initialisation and the [`Pass`] (train or eval, seeded dropout)
//! make runs bit-reproducible.

mod activation;
mod block;
mod conv;
mod init;
mod linear;
mod loss;
mod minibatch;
mod norm;
mod pass;
mod pool;
mod spectral_norm;
mod summary;

pub use activation::{leaky_relu, sigmoid, tanh, Activation};
pub use block::{Block, Parameters};
pub use conv::{conv_output, conv_transpose_output, Conv2d, ConvTranspose2d};
pub use init::{count_params, init_weights, is_state, InitScheme};
pub use linear::Linear;
pub use loss::{bce_with_logits, hinge};
pub use minibatch::{append_minibatch_std, pack_images};
pub use norm::BatchNorm;
pub use pass::Pass;
pub use pool::relu_max_pool2;
pub use spectral_norm::{MaybeSpectral, SpectralNorm, Weighted};
pub use summary::{thousands, LayerRow, Summary};
