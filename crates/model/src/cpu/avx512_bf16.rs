//! The `avx512-bf16` kernel: the network's convolutions with AVX512-BF16's
//! `VDPBF16PS` (each f32 lane adds the products of one bf16 pair), for CPUs
//! with AVX512-BF16 but no AMX: AMD Zen 4 and 5, Intel Cooper Lake.
//!
//! The same bf16 weights ([`PairedConv`]) and activations as the AMX kernel.
//! A block of [`PIXELS`] output pixels × 32 output channels lives in 28 zmm
//! registers over all 9 taps × 16 input-channel pairs: per pair, two weight
//! loads (outputs 0–15 and 16–31) feed 28 `VDPBF16PS`, each with the pixel's
//! pair broadcast from memory. Bias, ReLU, the f32 residual stream and the
//! rounding to bf16 for the next layer are fused into the block's store.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::{Layout, PairedConv, CH};

/// Output pixels per register block (2 × 14 accumulators + 2 weights of
/// the 32 zmm registers).
const PIXELS: usize = 14;

/// Whether this CPU has AVX512-BF16 (checked once).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    })
}

/// One layer over a band of rows (see [`super::Bf16Net::forward`]).
pub fn conv_layer(
    conv: &PairedConv,
    layout: &Layout,
    input: &[u16],
    residual: bool,
    y0: usize,
    out: &mut [u16],
    h32: &mut [f32],
) {
    let rows = super::band_rows(layout, input, y0, out, h32)
        .filter(|_| {
            available() && conv.taps.len() == 9 * 2 * 16 * PairedConv::ROW && conv.pairs <= CH / 2
        })
        .expect("avx512-bf16 conv_layer misuse");
    // SAFETY: the CPU has AVX-512F and AVX512-BF16 and the buffers have the
    // lengths `conv_layer_bf16` relies on (checked above).
    unsafe { conv_layer_bf16(conv, layout, input, residual, y0..y0 + rows, out, h32) }
}

/// # Safety
/// The CPU has AVX-512F and AVX512-BF16; `input` has `layout.len()`
/// elements, `out` the buffer rows of `rows` (from the first's border),
/// `h32` their `nx * CH` residual values each, `conv.taps` 9 × 2 × 16 rows.
///
/// Every read stays inside `input`: a block starts at a tile pixel, spans at
/// most `PIXELS` pixels plus a tap offset of at most [`super::MAX_DILATION`]
/// pixels and rows, all within the layout's border and right padding.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn conv_layer_bf16(
    conv: &PairedConv,
    layout: &Layout,
    input: &[u16],
    residual: bool,
    rows: std::ops::Range<usize>,
    out: &mut [u16],
    h32: &mut [f32],
) {
    let (y0, band_start) = (rows.start, layout.row_start(rows.start));
    let zero = _mm512_setzero_ps();
    let bias = [
        _mm512_loadu_ps(conv.bias.as_ptr()),
        _mm512_loadu_ps(conv.bias.as_ptr().add(16)),
    ];
    // A pixel's 32 bf16 channels are 16 u32 pairs.
    let pairs_in = input.as_ptr() as *const i32;
    for y in rows {
        for x0 in (0..layout.nx).step_by(PIXELS) {
            let mut acc = [[zero; 2]; PIXELS];
            let centre = layout.pixel(y, x0) as isize;
            for tap in 0..9 {
                let first = centre + layout.tap_offset(tap, conv.dilation);
                let px = pairs_in.offset(first * (CH / 2) as isize);
                let w = conv.taps.as_ptr().add(tap * 2 * 16 * PairedConv::ROW);
                for k in 0..conv.pairs {
                    let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                        w.add(k * PairedConv::ROW) as *const __m512i,
                    ));
                    let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                        w.add((16 + k) * PairedConv::ROW) as *const __m512i,
                    ));
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let a: __m512bh =
                            std::mem::transmute(_mm512_set1_epi32(*px.add(p * CH / 2 + k)));
                        acc[0] = _mm512_dpbf16_ps(acc[0], a, w0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], a, w1);
                    }
                }
            }
            let valid = PIXELS.min(layout.nx - x0);
            for (p, acc) in acc.iter().enumerate().take(valid) {
                let x = x0 + p;
                let h = h32.as_mut_ptr().add(((y - y0) * layout.nx + x) * CH);
                let dst = out.as_mut_ptr().add((layout.pixel(y, x) - band_start) * CH);
                for half in 0..2 {
                    let mut v = _mm512_max_ps(_mm512_add_ps(acc[half], bias[half]), zero);
                    if residual {
                        v = _mm512_add_ps(v, _mm512_loadu_ps(h.add(16 * half)));
                    }
                    _mm512_storeu_ps(h.add(16 * half), v);
                    let rounded: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                    _mm256_storeu_si256(dst.add(16 * half) as *mut __m256i, rounded);
                }
            }
        }
    }
}
