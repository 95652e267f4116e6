//! The `amx-bf16` kernel: [`ResidualNet`](crate::ResidualNet)'s
//! convolutions with Intel AMX tile instructions (bf16 products, f32
//! accumulation), for CPUs that have them.
//!
//! One `TDPBF16PS` multiplies 16 pixels × 32 input channels by 32 × 16
//! output channels: 32 channels of bf16 are one 64-byte tile row per pixel,
//! so every 3×3 tap of a dilated convolution is a plain strided tile load
//! from the engine's padded layout ([`super`]).

use std::arch::asm;
use std::sync::OnceLock;

use super::{Layout, PairedConv, CH};

/// Output pixels per step: two 16-row A tiles.
const BLOCK: usize = 32;

/// Whether this CPU has AMX-BF16 and Linux grants this process the tile
/// state (checked once).
pub fn granted() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| {
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
            tracing::info!("AMX present but not granted by the kernel");
        }
        rc == 0
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
        .filter(|_| granted())
        .expect("amx conv_layer misuse");
    // SAFETY: AMX is granted and the buffers have the padded layout
    // `conv_layer_amx` reads and writes (checked above); the tile state is
    // configured and released inside it, on this thread.
    unsafe { conv_layer_amx(conv, layout, input, residual, y0..y0 + rows, out, h32) }
}

#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// # Safety
/// AMX must be granted ([`granted`]); `input` has `layout.len()` elements,
/// `out` the buffer rows of `rows` (from the first's border), `h32` their
/// `nx * CH` residual values each.
#[target_feature(enable = "avx512f")]
unsafe fn conv_layer_amx(
    conv: &PairedConv,
    layout: &Layout,
    input: &[u16],
    residual: bool,
    rows: std::ops::Range<usize>,
    out: &mut [u16],
    h32: &mut [f32],
) {
    let (y0, band_start) = (rows.start, layout.row_start(rows.start));
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
    let d = conv.dilation;
    let row_bytes = CH * 2;
    for y in rows {
        for x0 in (0..layout.nx).step_by(BLOCK) {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack)
            );
            for tap in 0..9 {
                let at = layout.at(y, x0) as isize + layout.tap_offset(tap, d) * CH as isize;
                let pixels = input.as_ptr().offset(at);
                let weights = conv.taps.as_ptr().add(tap * 2 * 16 * PairedConv::ROW);
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
                let h = &mut h32[((y - y0) * layout.nx + x) * CH..][..CH];
                let dst = &mut out[(layout.pixel(y, x) - band_start) * CH..][..CH];
                let sums = &acc.0[p * CH..][..CH];
                for k in 0..CH {
                    let v = (sums[k] + conv.bias[k]).max(0.0);
                    let v = if residual { h[k] + v } else { v };
                    h[k] = v;
                    dst[k] = super::bf16(v);
                }
            }
        }
    }
    asm!("tilerelease", options(nostack));
}

/// Stored accumulator tiles: 32 pixels × 32 channels, f32, 64-byte aligned.
#[repr(C, align(64))]
struct Accumulator([f32; BLOCK * CH]);
