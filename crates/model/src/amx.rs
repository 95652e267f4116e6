//! Inference of [`ResidualNet`] with Intel AMX tile instructions (bf16
//! products, f32 accumulation), for CPUs that have them.
//!
//! Why: flex runs each convolution as NCHW → NHWC copy, im2col, GEMM, copy
//! back, then ReLU and the residual add as separate passes over memory; on
//! this network that reaches ~40–60 GFLOP/s on 2 cores, several times below
//! onnxruntime (`cargo bench -p finecast-benches --bench model_runtime`).
//! Here activations stay channels-last (32 channels = one 64-byte bf16 row
//! per pixel) in zero-padded buffers, so every 3×3 tap of a dilated
//! convolution is a plain strided tile load: no im2col, no layout changes.
//! One `TDPBF16PS` multiplies 16 pixels × 32 input channels by 32 × 16
//! output channels; bias, ReLU, the residual add (kept in f32) and the bf16
//! rounding for the next layer are fused into one pass per layer.
//!
//! Products are rounded to bf16 (8 significant bits), sums stay f32: the
//! output differs from flex's f32 by ~1e-2 of the normalised residual; the
//! skill difference is in docs/model-card.md. Only this network's shapes are
//! supported (width 32, ≤ 32 input features, 3×3 body with dilation ≤ 3,
//! 1×1 head with any number of outputs); [`AmxNet::new`] returns `None`
//! otherwise and flex runs.

use std::arch::asm;
use std::sync::OnceLock;

use ndarray::{Array3, ArrayView3};

use crate::net::ResidualNet;

/// Channels of every activation row (the input features are zero-padded).
const CH: usize = 32;
/// Output pixels per step: two 16-row A tiles.
const BLOCK: usize = 32;
/// Largest dilation (and so border) supported.
const MAX_DILATION: usize = 3;
/// Zero columns right of the tile: a block that starts at the last pixel
/// still reads inside the buffer.
const PAD_RIGHT: usize = BLOCK + 2 * MAX_DILATION;

/// Whether this CPU and kernel let us use AMX bf16 (checked once). Set
/// `FINECAST_MODEL_KERNEL=flex` to run Burn's flex backend instead.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("FINECAST_MODEL_KERNEL").is_ok_and(|v| v == "flex") {
            return false;
        }
        // CPUID leaf 7 exists on every x86-64 CPU that AMX could be on; on
        // older ones it reads zeros.
        let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
        let amx_bf16 = leaf7.edx & (1 << 22) != 0;
        let amx_tile = leaf7.edx & (1 << 24) != 0;
        if !(amx_bf16 && amx_tile && std::arch::is_x86_feature_detected!("avx512f")) {
            return false;
        }
        // Linux hands out the 8 KiB of tile state only on request.
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with these arguments only changes this process's
        // permission to use AMX state.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        if rc != 0 {
            tracing::info!("AMX present but not granted by the kernel: using flex");
        }
        rc == 0
    })
}

/// One 3×3 (or 1×1 head-free) convolution in tile layout.
struct Conv {
    /// Per tap (ky, kx) and output half (16 channels): 16 rows (input
    /// channel pairs) × 32 bf16 (16 outputs × pair), the VNNI layout of
    /// `TDPBF16PS`'s B operand.
    taps: Vec<u16>,
    bias: [f32; CH],
    dilation: usize,
}

/// [`ResidualNet`]'s weights laid out for AMX.
pub struct AmxNet {
    stem: Conv,
    body: Vec<Conv>,
    /// Per output channel: the 1×1 head's weights and bias (kept in f32).
    head: Vec<([f32; CH], f32)>,
    in_channels: usize,
}

/// f32 → bf16, round to nearest even (inputs are finite).
fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

fn values(t: burn::tensor::Tensor<4>) -> Option<(Vec<f32>, [usize; 4])> {
    let dims = t.dims();
    Some((t.into_data().try_to_vec::<f32>().ok()?, dims))
}

impl Conv {
    fn new(conv: &burn::nn::conv::Conv2d, dilation: usize) -> Option<Conv> {
        let (w, [cout, cin, kh, kw]) = values(conv.weight.val())?;
        if cout != CH || cin > CH || kh != 3 || kw != 3 || dilation > MAX_DILATION {
            return None;
        }
        let bias_v = conv
            .bias
            .as_ref()?
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .ok()?;
        let mut bias = [0.0; CH];
        bias.copy_from_slice(bias_v.get(..CH)?);
        let mut taps = vec![0u16; 9 * 2 * 16 * 32];
        for tap in 0..9 {
            let (ky, kx) = (tap / 3, tap % 3);
            for o in 0..CH {
                for i in 0..cin {
                    let (half, n) = (o / 16, o % 16);
                    let at = ((tap * 2 + half) * 16 + i / 2) * 32 + 2 * n + i % 2;
                    taps[at] = bf16(w[((o * cin + i) * 3 + ky) * 3 + kx]);
                }
            }
        }
        Some(Conv {
            taps,
            bias,
            dilation,
        })
    }
}

impl AmxNet {
    /// The network in AMX layout, or `None` when its shape is not supported.
    pub fn new(net: &ResidualNet, dilations: &[usize]) -> Option<AmxNet> {
        if dilations.len() != net.body.len() {
            return None;
        }
        let stem = Conv::new(&net.stem, 1)?;
        let body = net
            .body
            .iter()
            .zip(dilations)
            .map(|(c, &d)| Conv::new(c, d))
            .collect::<Option<Vec<_>>>()?;
        let (hw, [o, i, kh, kw]) = values(net.head.weight.val())?;
        if (i, kh, kw) != (CH, 1, 1) || o == 0 {
            return None;
        }
        let head_b = net
            .head
            .bias
            .as_ref()?
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .ok()?;
        let head = hw
            .chunks_exact(CH)
            .zip(head_b)
            .map(|(w, b)| {
                let mut row = [0.0; CH];
                row.copy_from_slice(w);
                (row, b)
            })
            .collect();
        let in_channels = net.stem.weight.val().dims()[1];
        Some(AmxNet {
            stem,
            body,
            head,
            in_channels,
        })
    }

    /// Normalised features `(C, ny, nx)` → normalised residual
    /// `(outputs, ny, nx)`.
    /// Call only where [`available`] is true.
    pub fn forward(&self, feats: ArrayView3<f32>) -> Array3<f32> {
        let (c, ny, nx) = feats.dim();
        assert!(
            c == self.in_channels && available(),
            "AmxNet::forward misuse"
        );
        let layout = Layout { ny, nx };
        let mut x = vec![0u16; layout.len()];
        for y in 0..ny {
            for i in 0..nx {
                let row = layout.at(y, i);
                for k in 0..c {
                    x[row + k] = bf16(feats[[k, y, i]]);
                }
            }
        }
        let mut h32 = vec![0f32; ny * nx * CH];
        let mut a = vec![0u16; layout.len()];
        let mut b = vec![0u16; layout.len()];
        // SAFETY: `available()` holds (asserted above), the buffers have the
        // padded layout the kernel reads, and the tile state is configured
        // and released inside `conv_layer` on this thread.
        unsafe {
            conv_layer(&self.stem, &layout, &x, &mut a, &mut h32, false);
            for conv in &self.body {
                conv_layer(conv, &layout, &a, &mut b, &mut h32, true);
                std::mem::swap(&mut a, &mut b);
            }
        }
        let mut out = Array3::zeros((self.head.len(), ny, nx));
        for (mut channel, (w, b)) in out.outer_iter_mut().zip(&self.head) {
            for (o, h) in channel.iter_mut().zip(h32.chunks_exact(CH)) {
                *o = b + h.iter().zip(w).map(|(v, w)| v * w).sum::<f32>();
            }
        }
        out
    }
}

/// Zero-padded channels-last bf16 buffer of a `ny` × `nx` tile.
struct Layout {
    ny: usize,
    nx: usize,
}

impl Layout {
    fn width(&self) -> usize {
        MAX_DILATION + self.nx + PAD_RIGHT
    }
    fn len(&self) -> usize {
        (self.ny + 2 * MAX_DILATION) * self.width() * CH
    }
    /// Element index of pixel `(y, x)` of the tile (may be in the border
    /// for `y`, `x` shifted by up to the dilation).
    fn at(&self, y: usize, x: usize) -> usize {
        ((y + MAX_DILATION) * self.width() + x + MAX_DILATION) * CH
    }
}

#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// One convolution over the tile: `out = bf16(h')` with
/// `h' = relu(conv(input) + bias)` (stem) or `h + relu(conv(input) + bias)`
/// (residual body), `h` the f32 residual stream.
///
/// # Safety
/// AMX must be available and granted ([`available`]); `input`/`out` have
/// `layout.len()` elements, `h32` has `ny * nx * CH`.
#[target_feature(enable = "avx512f")]
unsafe fn conv_layer(
    conv: &Conv,
    layout: &Layout,
    input: &[u16],
    out: &mut [u16],
    h32: &mut [f32],
    residual: bool,
) {
    // tmm0..3: accumulators (pixels 0-15 / 16-31 × channels 0-15 / 16-31),
    // tmm4, 5: the two pixel blocks of one tap, tmm6, 7: the tap's weights.
    let mut config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    for t in 0..8 {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    asm!("ldtilecfg [{0}]", in(reg) &config as *const TileConfig, options(nostack));
    let mut acc = Accumulator([0.0; BLOCK * CH]);
    let d = conv.dilation as isize;
    let row_bytes = CH * 2;
    for y in 0..layout.ny {
        for x0 in (0..layout.nx).step_by(BLOCK) {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack)
            );
            for tap in 0..9 {
                let dy = (tap / 3) as isize - 1;
                let dx = (tap % 3) as isize - 1;
                let centre = layout.at(y, x0) as isize;
                let at = centre + (dy * d * layout.width() as isize + dx * d) * CH as isize;
                let pixels = input.as_ptr().offset(at);
                let weights = conv.taps.as_ptr().add(tap * 2 * 16 * 32);
                asm!(
                    "tileloadd tmm4, [{p0} + {stride}*1]",
                    "tileloadd tmm5, [{p1} + {stride}*1]",
                    "tileloadd tmm6, [{w0} + {stride}*1]",
                    "tileloadd tmm7, [{w1} + {stride}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    p0 = in(reg) pixels,
                    p1 = in(reg) pixels.add(16 * CH),
                    w0 = in(reg) weights,
                    w1 = in(reg) weights.add(16 * 32),
                    stride = in(reg) row_bytes,
                    options(nostack),
                );
            }
            let c = acc.0.as_mut_ptr();
            asm!(
                "tilestored [{c0} + {stride}*1], tmm0",
                "tilestored [{c1} + {stride}*1], tmm1",
                "tilestored [{c2} + {stride}*1], tmm2",
                "tilestored [{c3} + {stride}*1], tmm3",
                c0 = in(reg) c,
                c1 = in(reg) c.add(16),
                c2 = in(reg) c.add(16 * CH),
                c3 = in(reg) c.add(16 * CH + 16),
                stride = in(reg) CH * 4,
                options(nostack),
            );
            let valid = BLOCK.min(layout.nx - x0);
            for p in 0..valid {
                let x = x0 + p;
                let h = &mut h32[(y * layout.nx + x) * CH..][..CH];
                let dst = &mut out[layout.at(y, x)..][..CH];
                let sums = &acc.0[p * CH..][..CH];
                for k in 0..CH {
                    let v = (sums[k] + conv.bias[k]).max(0.0);
                    let v = if residual { h[k] + v } else { v };
                    h[k] = v;
                    dst[k] = bf16(v);
                }
            }
        }
    }
    asm!("tilerelease", options(nostack));
}

/// Stored accumulator tiles: 32 pixels × 32 channels, f32, 64-byte aligned.
#[repr(C, align(64))]
struct Accumulator([f32; BLOCK * CH]);
