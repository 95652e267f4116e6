//! The f32 kernels (`avx512-f32`, `avx2-f32`, `neon-f32`): one convolution
//! kernel written once over `pulp`'s SIMD types and instantiated for each
//! instruction set, so there is no per-ISA assembly or `unsafe` here.
//!
//! A block of P output pixels × G vectors of output channels is accumulated
//! in registers over all 9 taps × input channels: per input channel, G
//! weight vectors are loaded once and each pixel's value is broadcast into
//! G fused multiply-adds. P and G are picked per vector width to fill the
//! register file: AVX-512 (32 × 16 lanes) 12 pixels × 2 vectors (32
//! channels); AVX2 (16 × 8 lanes) 6 × 2 (16 channels, two passes); NEON
//! (32 × 4 lanes) 6 × 4 (16 channels, two passes).

use bytemuck::{Pod, Zeroable};
use ndarray::{Array3, ArrayView3};
use pulp::{Simd, WithSimd};

use super::{Head, Layout, PlainConv, PlainNet, CH};
use crate::Kernel;

/// 64 bytes of f32, aligned for any vector width: the storage of weights
/// and activations, so they can be viewed as slices of vectors.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([f32; 16]);

const LINE: usize = 16;

/// The instruction set of an f32 kernel, as a token that proves the CPU
/// has it.
#[derive(Clone, Copy)]
pub enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512(pulp::x86::V4),
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
    #[cfg(target_arch = "aarch64")]
    Neon(pulp::aarch64::Neon),
}

impl Isa {
    /// The instruction set of `kernel`, where this CPU has it.
    pub fn of(kernel: Kernel) -> Option<Isa> {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512F32 => pulp::x86::V4::try_new().map(Isa::Avx512),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2F32 => pulp::x86::V3::try_new().map(Isa::Avx2),
            #[cfg(target_arch = "aarch64")]
            Kernel::NeonF32 => pulp::aarch64::Neon::try_new().map(Isa::Neon),
            _ => None,
        }
    }

    /// Output channels one register block covers.
    fn group_width(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(_) => 32,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(_) => 16,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon(_) => 16,
        }
    }

    fn run<Op: WithSimd>(self, op: Op) -> Op::Output {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(simd) => Simd::vectorize(simd, op),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(simd) => Simd::vectorize(simd, op),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon(simd) => Simd::vectorize(simd, op),
        }
    }
}

/// One 3×3 convolution: weights `[group][tap][input channel][group
/// width]`, bias as 32 f32.
struct Conv {
    weights: Vec<Line>,
    bias: [Line; CH / LINE],
    dilation: usize,
    /// Input channels that are not zero padding.
    cin: usize,
}

impl Conv {
    fn new(conv: &PlainConv, group_width: usize) -> Conv {
        let mut flat = vec![0f32; 9 * CH * CH];
        for g in 0..CH / group_width {
            for tap in 0..9 {
                for i in 0..CH {
                    for j in 0..group_width {
                        let at = ((g * 9 + tap) * CH + i) * group_width + j;
                        flat[at] = conv.w(g * group_width + j, i, tap);
                    }
                }
            }
        }
        let mut bias = [Line([0.0; LINE]); CH / LINE];
        for (line, chunk) in bias.iter_mut().zip(conv.bias.chunks_exact(LINE)) {
            line.0.copy_from_slice(chunk);
        }
        Conv {
            weights: lines(&flat),
            bias,
            dilation: conv.dilation,
            cin: conv.cin,
        }
    }
}

fn lines(values: &[f32]) -> Vec<Line> {
    values
        .chunks(LINE)
        .map(|c| {
            let mut line = [0.0; LINE];
            line[..c.len()].copy_from_slice(c);
            Line(line)
        })
        .collect()
}

/// The network for an f32 kernel.
pub struct F32Net {
    isa: Isa,
    stem: Conv,
    body: Vec<Conv>,
    head: Head,
    in_channels: usize,
}

impl F32Net {
    pub fn new(plain: &PlainNet, isa: Isa) -> F32Net {
        let gw = isa.group_width();
        F32Net {
            isa,
            stem: Conv::new(&plain.stem, gw),
            body: plain.body.iter().map(|c| Conv::new(c, gw)).collect(),
            head: plain.head.clone(),
            in_channels: plain.in_channels,
        }
    }

    /// Normalised features `(C, ny, nx)` → normalised residual
    /// `(outputs, ny, nx)`.
    pub fn forward(&self, feats: ArrayView3<f32>) -> Array3<f32> {
        let (c, ny, nx) = feats.dim();
        assert_eq!(c, self.in_channels, "feature channels");
        let layout = Layout { ny, nx };
        let mut a = vec![Line([0.0; LINE]); layout.len() / LINE];
        layout.fill(feats, bytemuck::cast_slice_mut(&mut a), |v| v);
        let mut b = a.clone();
        let layer = |conv: &Conv, input: &[Line], out: &mut [Line], residual: bool| {
            super::in_bands(&layout, out, CH / LINE, &mut [], |y0, rows, _| {
                self.isa.run(Layer {
                    conv,
                    layout: &layout,
                    group_width: self.isa.group_width(),
                    input,
                    residual,
                    y0,
                    out: rows,
                })
            })
        };
        layer(&self.stem, &a, &mut b, false);
        for conv in &self.body {
            std::mem::swap(&mut a, &mut b);
            layer(conv, &a, &mut b, true);
        }
        let hidden: &[f32] = bytemuck::cast_slice(&b);
        self.head
            .apply(ny, nx, |y, x| &hidden[layout.at(y, x)..][..CH])
    }
}

/// One convolution over a band of rows from `y0`: `out = relu(conv(input)
/// + bias)`, plus `input` where `residual` (the f32 stream is the activation
/// itself); `out` holds the band's buffer rows.
struct Layer<'a> {
    conv: &'a Conv,
    layout: &'a Layout,
    group_width: usize,
    input: &'a [Line],
    residual: bool,
    y0: usize,
    out: &'a mut [Line],
}

impl WithSimd for Layer<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // Register blocking per vector width (see the module comment).
        // The input channels loop to a constant bound (the next of 16 or
        // 32 at or above the real count; the weights past it are zero) so
        // the compiler unrolls it.
        match (S::F32_LANES, self.conv.cin <= 16) {
            (16, true) => self.block::<S, 2, 8, 16>(simd),
            (16, false) => self.block::<S, 2, 8, CH>(simd),
            (8, true) => self.block::<S, 2, 6, 16>(simd),
            (8, false) => self.block::<S, 2, 6, CH>(simd),
            (_, true) => self.block::<S, 4, 6, 16>(simd),
            (_, false) => self.block::<S, 4, 6, CH>(simd),
        }
    }
}

impl Layer<'_> {
    /// The layer in blocks of `P` pixels × `G` vectors of output channels,
    /// over the first `K` input channels.
    #[inline(always)]
    fn block<S: Simd, const G: usize, const P: usize, const K: usize>(self, simd: S) {
        let lanes = S::F32_LANES;
        let group_width = G * lanes;
        assert_eq!(
            group_width, self.group_width,
            "weights packed for another width"
        );
        let groups = CH / group_width;
        let per_pixel = CH / lanes;
        let layout = self.layout;
        let zero = simd.splat_f32s(0.0);
        let pixels: &[[f32; CH]] = bytemuck::cast_slice(self.input);
        let input: &[S::f32s] = bytemuck::cast_slice(self.input);
        let rows = self.out.len() / (layout.width() * CH / LINE);
        let out: &mut [S::f32s] = bytemuck::cast_slice_mut(self.out);
        let weights: &[[S::f32s; G]] = bytemuck::cast_slice(&self.conv.weights);
        let bias: &[S::f32s] = bytemuck::cast_slice(&self.conv.bias);
        let band_start = layout.row_start(self.y0);
        for y in self.y0..self.y0 + rows {
            for g in 0..groups {
                // Each tap's pixel offset and weights, once per row.
                let taps: [(isize, &[[S::f32s; G]; CH]); 9] = std::array::from_fn(|tap| {
                    let w = weights[(g * 9 + tap) * CH..][..CH]
                        .try_into()
                        .expect("CH rows");
                    (layout.tap_offset(tap, self.conv.dilation), w)
                });
                for x0 in (0..layout.nx).step_by(P) {
                    let centre = layout.pixel(y, x0);
                    let mut acc = [[zero; G]; P];
                    for &(offset, w) in &taps {
                        let first = centre.wrapping_add_signed(offset);
                        let px: &[[f32; CH]; P] =
                            pixels[first..first + P].try_into().expect("P pixels");
                        for (k, wk) in w[..K].iter().enumerate() {
                            for (acc, px) in acc.iter_mut().zip(px) {
                                let x = simd.splat_f32s(px[k]);
                                for (a, w) in acc.iter_mut().zip(wk) {
                                    *a = simd.mul_add_f32s(x, *w, *a);
                                }
                            }
                        }
                    }
                    let valid = P.min(layout.nx - x0);
                    for (p, acc) in acc.iter().enumerate().take(valid) {
                        let at = (centre + p) * per_pixel + g * G;
                        let dst = (centre + p - band_start) * per_pixel + g * G;
                        for (j, a) in acc.iter().enumerate() {
                            let mut v = simd.max_f32s(simd.add_f32s(*a, bias[g * G + j]), zero);
                            if self.residual {
                                v = simd.add_f32s(v, input[at + j]);
                            }
                            out[dst + j] = v;
                        }
                    }
                }
            }
        }
    }
}
