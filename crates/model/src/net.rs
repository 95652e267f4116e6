//! The network: a fully convolutional residual CNN on the feature channels,
//! predicting the normalised residual over the model kind's baseline (one
//! output channel for scalar fields, two for wind).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Architecture of [`ResidualNet`].
#[derive(Config, Debug, PartialEq)]
pub struct ResidualNetConfig {
    /// Input feature channels.
    pub in_channels: usize,
    /// Channels of the hidden layers.
    #[config(default = 32)]
    pub width: usize,
    /// Dilation of each 3x3 residual body layer (one layer per entry).
    #[config(default = "vec![1, 2, 3, 2, 1]")]
    pub dilations: Vec<usize>,
    /// Output channels: the residual components (1 for temperature and
    /// precipitation; 2 for wind, along and across the coarse wind).
    #[config(default = 1)]
    pub out_channels: usize,
}

impl ResidualNetConfig {
    /// Receptive radius in cells of the convolutions (the stem's 1 plus each
    /// body layer's dilation; the 1x1 head adds nothing).
    pub fn conv_radius(&self) -> usize {
        1 + self.dilations.iter().sum::<usize>()
    }

    /// Multiply-adds per output pixel (bias excluded).
    pub fn macs_per_pixel(&self) -> usize {
        let w = self.width;
        9 * self.in_channels * w + self.dilations.len() * 9 * w * w + w * self.out_channels
    }

    /// A network of this architecture on `device` with fresh random weights
    /// (from the device's seed). The body's Kaiming-uniform weights are
    /// scaled down (gain 0.5/√3) and the head's drawn within ±1e-3, so an
    /// untrained network predicts a residual near 0, i.e. the baseline, and
    /// the residual stream starts near the identity.
    pub fn init(&self, device: &Device) -> ResidualNet {
        let stem = Conv2dConfig::new([self.in_channels, self.width], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device);
        let body = self
            .dilations
            .iter()
            .map(|&d| {
                Conv2dConfig::new([self.width, self.width], [3, 3])
                    .with_dilation([d, d])
                    .with_padding(PaddingConfig2d::Explicit(d, d, d, d))
                    .with_initializer(Initializer::KaimingUniform {
                        gain: 0.5 / 3.0f64.sqrt(),
                        fan_out_only: false,
                    })
                    .init(device)
            })
            .collect();
        let head = Conv2dConfig::new([self.width, self.out_channels], [1, 1])
            .with_initializer(Initializer::Uniform {
                min: -1e-3,
                max: 1e-3,
            })
            .init(device);
        ResidualNet { stem, body, head }
    }
}

/// stem (3x3) → ReLU → [x + ReLU(conv3x3_d(x))] per dilation → 1x1 head.
/// Zero padding keeps every layer's output the size of its input.
#[derive(Module, Debug)]
pub struct ResidualNet {
    /// 3x3 convolution (padding 1) from the feature channels to `width`.
    pub stem: Conv2d,
    /// One 3x3 `width → width` convolution per entry of
    /// [`ResidualNetConfig::dilations`], with that dilation and equal zero
    /// padding, each added to its input after a ReLU.
    pub body: Vec<Conv2d>,
    /// 1x1 convolution from `width` to the output channels, no activation:
    /// the normalised residual.
    pub head: Conv2d,
}

impl ResidualNet {
    /// `x`: `[batch, in_channels, ny, nx]` → `[batch, out_channels, ny, nx]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = relu(self.stem.forward(x));
        for conv in &self.body {
            h = h.clone() + relu(conv.forward(h));
        }
        self.head.forward(h)
    }
}
