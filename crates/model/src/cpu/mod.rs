//! finecast's own CPU inference engine for [`ResidualNet`], with one
//! micro-kernel per instruction set, picked at run time from the CPU's
//! features (or forced with `FINECAST_MODEL_KERNEL`).
//!
//! Why not Burn's flex for inference: flex runs each convolution as NCHW →
//! NHWC copy, im2col, GEMM, copy back, then ReLU and the residual add as
//! separate passes over memory; on this network that is several times
//! slower than onnxruntime (`cargo bench -p finecast-benches --bench
//! model_runtime`). Every kernel here shares one layout instead:
//! activations stay channels-last (32 channels a pixel) in buffers with a
//! zero border as wide as the largest dilation, so each 3×3 tap of a dilated
//! convolution reads a run of consecutive pixels: no im2col, no layout
//! changes between layers. A block of output pixels × output channels is
//! accumulated in registers over all 9 taps × input channels, then bias,
//! ReLU, the residual add and the store for the next layer happen in one
//! pass. Each layer runs in bands of rows on rayon ([`in_bands`]), so a
//! single tile uses every core and tiles side by side still balance.
//!
//! The kernels ([`Kernel`]), best first (see [`best_first`] for the order
//! of the two AVX-512 kernels):
//! * `amx-bf16`: Intel AMX tiles (`TDPBF16PS`), bf16 products, f32 sums.
//! * `avx512-bf16`: AVX512-BF16's `VDPBF16PS` (AMD Zen 4/5, Intel Cooper
//!   Lake and later): the same bf16 weights and activations as AMX, 14
//!   pixels × 32 channels of f32 sums in 28 registers; a layer's weights
//!   are 18 KiB, so they stay in a 32 KiB L1 (f32's 36 KiB do not).
//! * `avx512-f32`, `avx2-f32`, `neon-f32`: one f32 kernel written once over
//!   `pulp`'s portable SIMD types and instantiated for AVX-512, AVX2+FMA and
//!   aarch64 NEON, with the register blocking chosen per vector width.
//!
//! bf16 products keep 8 significant bits: ~1e-2 of the normalised residual
//! off flex's f32; the f32 kernels differ from flex only by summation order.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod amx;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512_bf16;
mod simd_f32;

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

use crate::net::ResidualNet;
use crate::Kernel;

/// Channels of every activation row (the input features are zero-padded).
pub(crate) const CH: usize = 32;
/// Largest dilation (and so border) supported.
pub(crate) const MAX_DILATION: usize = 3;
/// Zero columns right of the tile: a block of up to 32 pixels that starts at
/// the last pixel still reads inside the buffer.
const PAD_RIGHT: usize = 32 + 2 * MAX_DILATION;

/// Zero-padded channels-last buffer of a `ny` × `nx` tile.
pub(crate) struct Layout {
    pub ny: usize,
    pub nx: usize,
}

impl Layout {
    /// Pixels in a buffer row.
    pub fn width(&self) -> usize {
        MAX_DILATION + self.nx + PAD_RIGHT
    }
    /// Pixels in the buffer.
    pub fn pixels(&self) -> usize {
        (self.ny + 2 * MAX_DILATION) * self.width()
    }
    /// Elements (pixels × channels) in the buffer.
    pub fn len(&self) -> usize {
        self.pixels() * CH
    }
    /// Pixel index of `(y, x)` of the tile.
    pub fn pixel(&self, y: usize, x: usize) -> usize {
        (y + MAX_DILATION) * self.width() + x + MAX_DILATION
    }
    /// Element index of pixel `(y, x)`'s first channel.
    pub fn at(&self, y: usize, x: usize) -> usize {
        self.pixel(y, x) * CH
    }
    /// Pixel index of the start (border included) of buffer row `y` of the
    /// tile.
    pub fn row_start(&self, y: usize) -> usize {
        (y + MAX_DILATION) * self.width()
    }
    /// Pixel offset of tap `tap` (0..9, row-major 3×3) at dilation `d`.
    pub fn tap_offset(&self, tap: usize, d: usize) -> isize {
        let dy = (tap / 3) as isize - 1;
        let dx = (tap % 3) as isize - 1;
        (dy * self.width() as isize + dx) * d as isize
    }
    /// Writes `feats` `(C, ny, nx)` channels-last into `buf` (zeros
    /// elsewhere), each value through `convert`.
    pub fn fill<T: Copy>(&self, feats: ArrayView3<f32>, buf: &mut [T], convert: impl Fn(f32) -> T) {
        for y in 0..self.ny {
            for x in 0..self.nx {
                let row = self.at(y, x);
                for (k, v) in feats.outer_iter().map(|c| c[[y, x]]).enumerate() {
                    buf[row + k] = convert(v);
                }
            }
        }
    }
}

/// Tile rows of one parallel task.
const BAND: usize = 4;

/// Runs `band(y0, out_rows, h_rows)` over the tile's rows in bands of
/// [`BAND`] rows, side by side on rayon threads: `out_rows` is the part of
/// `out` (a layout buffer of `per_pixel` elements a pixel) holding rows
/// `y0..`, whole buffer rows with their borders; `h_rows` the same rows of
/// the compact `ny * nx * CH` residual stream `h32` (empty where `h32` is).
/// A layer's rows only read its input, so they are independent: one tile
/// uses every core, and tiles side by side still balance.
pub(crate) fn in_bands<T: Send>(
    layout: &Layout,
    out: &mut [T],
    per_pixel: usize,
    h32: &mut [f32],
    band: impl Fn(usize, &mut [T], &mut [f32]) + Sync,
) {
    let rows = &mut out[layout.row_start(0) * per_pixel..layout.row_start(layout.ny) * per_pixel];
    let out_bands = rows.par_chunks_mut(BAND * layout.width() * per_pixel);
    if h32.is_empty() {
        out_bands
            .enumerate()
            .for_each(|(i, o)| band(i * BAND, o, &mut []));
    } else {
        out_bands
            .zip(h32.par_chunks_mut(BAND * layout.nx * CH))
            .enumerate()
            .for_each(|(i, (o, h))| band(i * BAND, o, h));
    }
}

/// One convolution's weights as read from the Burn module, shape-checked.
pub(crate) struct PlainConv {
    /// `[out][in][3][3]`.
    weight: Vec<f32>,
    /// Input channels (≤ [`CH`]).
    pub cin: usize,
    pub bias: [f32; CH],
    pub dilation: usize,
}

impl PlainConv {
    fn new(conv: &burn::nn::conv::Conv2d, dilation: usize) -> Option<PlainConv> {
        let (weight, [cout, cin, kh, kw]) = values(conv.weight.val())?;
        if cout != CH || cin > CH || kh != 3 || kw != 3 || dilation > MAX_DILATION {
            return None;
        }
        let mut bias = [0.0; CH];
        bias.copy_from_slice(bias_of(conv)?.get(..CH)?);
        Some(PlainConv {
            weight,
            cin,
            bias,
            dilation,
        })
    }

    /// Weight from input channel `i` to output `o` at tap `tap` (row-major
    /// 3×3); 0 for the zero-padded input channels.
    pub fn w(&self, o: usize, i: usize, tap: usize) -> f32 {
        if i >= self.cin {
            return 0.0;
        }
        self.weight[(o * self.cin + i) * 9 + tap]
    }
}

/// [`ResidualNet`]'s weights, shape-checked for the engine: width 32, ≤ 32
/// input features, 3×3 stem and body with dilations ≤ 3, a 1×1 head.
pub(crate) struct PlainNet {
    pub stem: PlainConv,
    pub body: Vec<PlainConv>,
    pub head: Head,
    pub in_channels: usize,
}

impl PlainNet {
    fn new(net: &ResidualNet, dilations: &[usize]) -> Option<PlainNet> {
        if dilations.len() != net.body.len() {
            return None;
        }
        let stem = PlainConv::new(&net.stem, 1)?;
        let body = net
            .body
            .iter()
            .zip(dilations)
            .map(|(c, &d)| PlainConv::new(c, d))
            .collect::<Option<Vec<_>>>()?;
        let (hw, [o, i, kh, kw]) = values(net.head.weight.val())?;
        if (i, kh, kw) != (CH, 1, 1) || o == 0 {
            return None;
        }
        let head_b = bias_of(&net.head)?;
        let outputs = hw
            .chunks_exact(CH)
            .zip(head_b)
            .map(|(w, b)| {
                let mut row = [0.0; CH];
                row.copy_from_slice(w);
                (row, b)
            })
            .collect();
        Some(PlainNet {
            in_channels: stem.cin,
            stem,
            body,
            head: Head(outputs),
        })
    }
}

/// The 1×1 head, in f32: per output channel its weights and bias.
#[derive(Clone)]
pub(crate) struct Head(Vec<([f32; CH], f32)>);

impl Head {
    /// `(outputs, ny, nx)` from each pixel's 32 hidden channels.
    pub fn apply<'a>(
        &self,
        ny: usize,
        nx: usize,
        hidden: impl Fn(usize, usize) -> &'a [f32],
    ) -> Array3<f32> {
        let mut out = Array3::zeros((self.0.len(), ny, nx));
        for (mut channel, (w, b)) in out.outer_iter_mut().zip(&self.0) {
            for ((y, x), o) in channel.indexed_iter_mut() {
                *o = b + hidden(y, x).iter().zip(w).map(|(v, w)| v * w).sum::<f32>();
            }
        }
        out
    }
}

fn bias_of(conv: &burn::nn::conv::Conv2d) -> Option<Vec<f32>> {
    conv.bias
        .as_ref()?
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .ok()
}

fn values(t: burn::tensor::Tensor<4>) -> Option<(Vec<f32>, [usize; 4])> {
    let dims = t.dims();
    Some((t.into_data().try_to_vec::<f32>().ok()?, dims))
}

/// f32 → bf16, round to nearest even (inputs are finite).
pub(crate) fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// A 3×3 convolution's weights for the two bf16 kernels: per tap (ky, kx)
/// and output half (16 channels), 16 rows (input-channel pairs) × 32 bf16
/// (16 outputs × the pair), the pair layout of `TDPBF16PS`'s B operand and of
/// `VDPBF16PS`.
pub(crate) struct PairedConv {
    pub taps: Vec<u16>,
    pub bias: [f32; CH],
    pub dilation: usize,
    /// Input-channel pairs that are not all zero padding.
    pub pairs: usize,
}

impl PairedConv {
    /// bf16 values of one (tap, half, pair) row.
    pub const ROW: usize = 32;

    fn new(conv: &PlainConv) -> PairedConv {
        let mut taps = vec![0u16; 9 * 2 * 16 * Self::ROW];
        for tap in 0..9 {
            for o in 0..CH {
                for i in 0..conv.cin {
                    let (half, n) = (o / 16, o % 16);
                    let at = ((tap * 2 + half) * 16 + i / 2) * Self::ROW + 2 * n + i % 2;
                    taps[at] = bf16(conv.w(o, i, tap));
                }
            }
        }
        PairedConv {
            taps,
            bias: conv.bias,
            dilation: conv.dilation,
            pairs: conv.cin.div_ceil(2),
        }
    }
}

/// The network for a bf16 kernel: bf16 activations for the products, the
/// residual stream kept in f32.
pub(crate) struct Bf16Net {
    stem: PairedConv,
    body: Vec<PairedConv>,
    head: Head,
    in_channels: usize,
}

/// The rows of a band given to a bf16 layer, if its buffers fit the layout:
/// `input` the whole layout, `out` whole buffer rows from `y0`, `h32` the
/// same rows of the residual stream. The kernels check this before any
/// unchecked access.
pub(crate) fn band_rows(
    layout: &Layout,
    input: &[u16],
    y0: usize,
    out: &[u16],
    h32: &[f32],
) -> Option<usize> {
    let rows = h32.len() / (layout.nx * CH);
    let fits = input.len() == layout.len()
        && out.len() == rows * layout.width() * CH
        && h32.len() == rows * layout.nx * CH
        && y0 + rows <= layout.ny;
    fits.then_some(rows)
}

/// One bf16 layer over a band of rows: `(conv, layout, input, residual?,
/// y0, output rows, residual stream rows)`, see [`Bf16Net::forward`] and
/// [`in_bands`].
type Bf16Layer<'a> =
    &'a (dyn Fn(&PairedConv, &Layout, &[u16], bool, usize, &mut [u16], &mut [f32]) + Sync);

impl Bf16Net {
    fn new(plain: &PlainNet) -> Bf16Net {
        Bf16Net {
            stem: PairedConv::new(&plain.stem),
            body: plain.body.iter().map(PairedConv::new).collect(),
            head: Head(plain.head.0.clone()),
            in_channels: plain.in_channels,
        }
    }

    /// Runs the network with `layer` computing each convolution, band by
    /// band, as `out = bf16(h')`, `h' = relu(conv(input) + bias)` (stem) or
    /// `h + relu(conv(input) + bias)` (body), `h` the f32 residual stream
    /// (`ny * nx * CH`, compact) updated in place.
    fn forward(&self, feats: ArrayView3<f32>, layer: Bf16Layer) -> Array3<f32> {
        let (c, ny, nx) = feats.dim();
        assert_eq!(c, self.in_channels, "feature channels");
        let layout = Layout { ny, nx };
        let mut a = vec![0u16; layout.len()];
        layout.fill(feats, &mut a, bf16);
        let mut b = vec![0u16; layout.len()];
        let mut h32 = vec![0f32; ny * nx * CH];
        let run = |conv: &PairedConv, input: &[u16], out: &mut [u16], h32: &mut [f32], residual| {
            in_bands(&layout, out, CH, h32, |y0, rows, h| {
                layer(conv, &layout, input, residual, y0, rows, h)
            })
        };
        run(&self.stem, &a, &mut b, &mut h32, false);
        for conv in &self.body {
            std::mem::swap(&mut a, &mut b);
            run(conv, &a, &mut b, &mut h32, true);
        }
        self.head
            .apply(ny, nx, |y, x| &h32[(y * nx + x) * CH..][..CH])
    }
}

/// The engine's kernels.
const ENGINE: [Kernel; 5] = [
    Kernel::AmxBf16,
    Kernel::Avx512Bf16,
    Kernel::Avx512F32,
    Kernel::Avx2F32,
    Kernel::NeonF32,
];

/// The engine's kernels, best first for this CPU: the order of the
/// automatic choice. AMX first; then AVX512-BF16 before AVX-512 f32 where
/// `VDPBF16PS` runs at the vector unit's full rate (AMD: one 512-bit
/// `VDPBF16PS` a cycle does twice the work of a 512-bit FMA), after it
/// where it does not (Intel cores issue it at half the f32 FMA rate:
/// 104 vs 208 GFLOP/s on one core of the development Xeon, so the f32
/// kernel is faster there); then AVX2, then NEON.
fn best_first() -> [Kernel; 5] {
    if bf16_dot_is_full_rate() {
        ENGINE
    } else {
        [
            Kernel::AmxBf16,
            Kernel::Avx512F32,
            Kernel::Avx512Bf16,
            Kernel::Avx2F32,
            Kernel::NeonF32,
        ]
    }
}

/// Whether the CPU is AMD's (see [`best_first`]).
fn bf16_dot_is_full_rate() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let leaf0 = core::arch::x86_64::__cpuid(0);
        let vendor: Vec<u8> = [leaf0.ebx, leaf0.edx, leaf0.ecx]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        vendor == b"AuthenticAMD"
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU (and OS) runs `kernel`. Flex runs everywhere; Vulkan is
/// not a CPU kernel.
pub(crate) fn cpu_has(kernel: Kernel) -> bool {
    match kernel {
        Kernel::Flex => true,
        Kernel::Vulkan => false,
        #[cfg(target_arch = "x86_64")]
        Kernel::AmxBf16 => amx::granted(),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Bf16 => avx512_bf16::available(),
        other => simd_f32::Isa::of(other).is_some(),
    }
}

/// The kernels this machine runs, best first, flex last.
pub fn cpu_kernels() -> Vec<Kernel> {
    best_first()
        .into_iter()
        .filter(|&k| cpu_has(k))
        .chain([Kernel::Flex])
        .collect()
}

/// The network packed for one kernel.
enum Engine {
    #[cfg(target_arch = "x86_64")]
    Amx(Bf16Net),
    #[cfg(target_arch = "x86_64")]
    Avx512Bf16(Bf16Net),
    SimdF32(simd_f32::F32Net),
}

/// The network packed for a CPU kernel this machine has.
pub(crate) struct CpuNet {
    kernel: Kernel,
    engine: Engine,
}

impl CpuNet {
    /// `net` for `kernel`, or why not (the CPU lacks it, or the network's
    /// shape is not one the engine supports). [`Kernel::Flex`] and
    /// [`Kernel::Vulkan`] are not engine kernels.
    pub fn new(net: &ResidualNet, dilations: &[usize], kernel: Kernel) -> Result<CpuNet, String> {
        if !ENGINE.contains(&kernel) {
            return Err(format!("{kernel} is not a kernel of finecast's CPU engine"));
        }
        if !cpu_has(kernel) {
            return Err(format!("this CPU cannot run {kernel}"));
        }
        let plain = PlainNet::new(net, dilations).ok_or_else(|| {
            format!(
                "{kernel} runs only width-32 networks with <= 32 features and dilations <= {MAX_DILATION}"
            )
        })?;
        let engine = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::AmxBf16 => Engine::Amx(Bf16Net::new(&plain)),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Bf16 => Engine::Avx512Bf16(Bf16Net::new(&plain)),
            other => {
                let isa = simd_f32::Isa::of(other)
                    .ok_or_else(|| format!("this CPU cannot run {other}"))?;
                Engine::SimdF32(simd_f32::F32Net::new(&plain, isa))
            }
        };
        Ok(CpuNet { kernel, engine })
    }

    /// The kernel this network runs on.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Normalised features `(C, ny, nx)` (C = the network's inputs) →
    /// normalised residual `(outputs, ny, nx)`.
    pub fn forward(&self, feats: ArrayView3<f32>) -> Array3<f32> {
        match &self.engine {
            #[cfg(target_arch = "x86_64")]
            Engine::Amx(net) => net.forward(feats, &amx::conv_layer),
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512Bf16(net) => net.forward(feats, &avx512_bf16::conv_layer),
            Engine::SimdF32(net) => net.forward(feats),
        }
    }
}

/// The engine kernel for a network on the CPU: the one
/// `FINECAST_MODEL_KERNEL` names if this machine has it, else the best one
/// it has; `None` runs flex (asked for, or no kernel fits).
pub(crate) fn choose(net: &ResidualNet, dilations: &[usize]) -> Option<CpuNet> {
    let asked = std::env::var("FINECAST_MODEL_KERNEL").ok();
    let asked = asked.as_deref().map(str::trim);
    if let Some(name) = asked.filter(|s| !s.is_empty() && *s != "auto") {
        match name.parse::<Kernel>() {
            Ok(Kernel::Flex) => return None,
            Ok(kernel) => match CpuNet::new(net, dilations, kernel) {
                Ok(cpu) => return Some(cpu),
                Err(why) => tracing::warn!(
                    "FINECAST_MODEL_KERNEL={name}: {why}; choosing the best kernel this CPU has"
                ),
            },
            Err(why) => tracing::warn!(
                "FINECAST_MODEL_KERNEL: {why}; choosing the best kernel this CPU has"
            ),
        }
    }
    best_first()
        .into_iter()
        .filter(|&k| cpu_has(k))
        .find_map(|k| CpuNet::new(net, dilations, k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel's name parses back to it (the names
    /// `FINECAST_MODEL_KERNEL` takes and outputs record); a wrong name is
    /// refused with the list of right ones.
    #[test]
    fn kernel_names_round_trip() {
        for k in Kernel::ALL {
            assert_eq!(k.name().parse::<Kernel>(), Ok(k));
        }
        assert_eq!("flex".parse::<Kernel>(), Ok(Kernel::Flex));
        assert_eq!(" AVX2-F32 ".parse::<Kernel>(), Ok(Kernel::Avx2F32));
        let err = "avx3".parse::<Kernel>().unwrap_err();
        assert!(
            err.contains("'avx3'") && err.contains("avx512-bf16"),
            "{err}"
        );
    }

    /// The machine's kernel list is the engine's order filtered by what the
    /// CPU has, flex last; asking for a kernel it lacks, or for one that is
    /// not the engine's, is an error that names it.
    #[test]
    fn cpu_kernels_are_ordered_and_checked() {
        let have = cpu_kernels();
        assert_eq!(have.last(), Some(&Kernel::Flex));
        let order = best_first();
        let ranks: Vec<usize> = have[..have.len() - 1]
            .iter()
            .map(|k| order.iter().position(|o| o == k).expect("an engine kernel"))
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{have:?}");
        let net = crate::ResidualNetConfig::new(4).init(&crate::device::cpu());
        let dilations = [1, 2, 3, 2, 1];
        for k in ENGINE {
            match CpuNet::new(&net, &dilations, k) {
                Ok(cpu) => assert!(have.contains(&k) && cpu.kernel() == k),
                Err(why) => assert!(!have.contains(&k) && why.contains(k.name()), "{why}"),
            }
        }
        let err = CpuNet::new(&net, &dilations, Kernel::Flex).err().unwrap();
        assert!(err.contains("flex-f32"), "{err}");
        // A network wider than the engine takes is refused, not mis-run.
        let wide = crate::ResidualNetConfig::new(4)
            .with_width(16)
            .init(&crate::device::cpu());
        if let Some(&k) = have.first().filter(|k| **k != Kernel::Flex) {
            let err = CpuNet::new(&wide, &dilations, k).err().unwrap();
            assert!(err.contains("width-32"), "{err}");
        }
    }
}
