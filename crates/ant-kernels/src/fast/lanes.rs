//! The depthwise kernel with channels in lanes, on AVX2: a group of [`GROUP`] channel planes
//! is transposed (8 x 8 blocks in registers) into one zero-padded plane of pixels, each
//! pixel the group's [`GROUP`] values in one vector, so that every tap of every output is
//! one whole, aligned-width vector: no lanes spent on a plane's padding columns, no load
//! split across cache lines by a tap's column offset, and stride 2 reads whole pixels two
//! apart instead of splitting rows into even and odd columns. The outputs go back to planes
//! through the epilogue and the same transpose. Each output is the same sum, in the same
//! order, as the plane kernel's (`w * x` per tap, taps `ky`-major, then the epilogue), so
//! the two give the same bits.

use core::arch::x86_64::__m256;

use pulp::bytemuck::cast;
use pulp::x86::V3;

use super::{Epilogue, PlaneGeometry, finish};

/// Channels per group: one AVX2 vector of `f32`.
pub(super) const GROUP: usize = 8;

/// One pixel of a group: its [`GROUP`] channels.
type Pixel = [f32; GROUP];

/// Output pixels of a row computed together, their accumulators one vector each (4
/// measured as fast as 6 or 8, which spill).
const PIXELS: usize = 4;

/// Buffers one call reuses for each group: the zero-padded plane of pixels (its padding
/// stays zero: every group writes the same interior) and the group's output pixels.
pub(super) struct GroupScratch {
    padded: Vec<f32>,
    out: Vec<f32>,
}

impl GroupScratch {
    /// From this thread's recycled buffers ([`crate::scratch`]), only the padding zeroed
    /// (zeroing the whole fresh plane was 6-7% of D0's stride-2 layers at 128^2 and 256^2).
    pub(super) fn new(g: &PlaneGeometry, out_plane: usize) -> Self {
        let mut padded = crate::scratch::take(g.padded_h * g.padded_w * GROUP);
        g.zero_padding(&mut padded, GROUP);
        Self {
            padded,
            out: crate::scratch::take(out_plane * GROUP),
        }
    }
}

impl Drop for GroupScratch {
    fn drop(&mut self) {
        crate::scratch::recycle(std::mem::take(&mut self.padded));
        crate::scratch::recycle(std::mem::take(&mut self.out));
    }
}

/// One group's planes and parameters: `input` its [`GROUP`] input planes one after
/// another, `filters` their `K x K` filters (channel-major), `scale` and `shift` their
/// affine, `output` their output planes.
pub(super) struct Group<'a> {
    pub(super) input: &'a [f32],
    pub(super) filters: &'a [f32],
    pub(super) scale: &'a [f32],
    pub(super) shift: &'a [f32],
    pub(super) epilogue: Epilogue,
    pub(super) output: &'a mut [f32],
}

/// Whether groups in lanes beat the plane kernel on this shape, as measured on D0's
/// layers (`depthwise_shapes`, AVX2): every stride-2 layer (no split rows: 672 x 32^2 5x5
/// 0.61 -> 0.42 ms, 96 x 256^2 3x3 4.28 -> 3.99) and 5x5 on planes up to 32 x 32 (1152 x
/// 16^2 0.67 -> 0.57; even at 32^2). Stride-1 3x3 stays on planes, where the transposes
/// cost more than the 9 taps save (480 x 32^2 0.58 -> 0.72).
pub(super) fn pays(kernel: usize, stride: usize, plane: usize) -> bool {
    stride == 2 || (kernel == 5 && plane <= 32 * 32)
}

/// Runs a group on AVX2. `g`'s kernel is 3 or 5, its stride 1 or 2.
pub(super) fn depthwise_group(
    simd: V3,
    g: &PlaneGeometry,
    scratch: &mut GroupScratch,
    group: Group,
) {
    match (g.kernel, g.stride) {
        (3, 1) => simd.vectorize(
            #[inline(always)]
            || group_planes::<3, 9, 1>(simd, g, scratch, group),
        ),
        (5, 1) => simd.vectorize(
            #[inline(always)]
            || group_planes::<5, 25, 1>(simd, g, scratch, group),
        ),
        (3, 2) => simd.vectorize(
            #[inline(always)]
            || group_planes::<3, 9, 2>(simd, g, scratch, group),
        ),
        (5, 2) => simd.vectorize(
            #[inline(always)]
            || group_planes::<5, 25, 2>(simd, g, scratch, group),
        ),
        other => unreachable!("channels-in-lanes depthwise for kernel and stride {other:?}"),
    }
}

#[inline(always)]
fn group_planes<const K: usize, const TAPS: usize, const STRIDE: usize>(
    simd: V3,
    g: &PlaneGeometry,
    scratch: &mut GroupScratch,
    group: Group,
) {
    let (padded, _) = scratch.padded.as_chunks_mut::<GROUP>();
    let (out, _) = scratch.out.as_chunks_mut::<GROUP>();
    let Group {
        input,
        filters,
        scale,
        shift,
        epilogue,
        output,
    } = group;
    let weights: [Pixel; TAPS] =
        std::array::from_fn(|tap| std::array::from_fn(|c| filters[c * TAPS + tap]));
    let scale: Pixel = std::array::from_fn(|c| scale[c]);
    let shift: Pixel = std::array::from_fn(|c| shift[c]);
    let (width, pw) = (g.width, g.padded_w);
    let plane_in = input.len() / GROUP;
    let height = plane_in / width;
    // In: pixel (y, x) from the GROUP planes' rows y, 8 x 8 blocks transposed in registers.
    let full = width - width % 8;
    for y in 0..height {
        let rows: [&[f32]; GROUP] =
            std::array::from_fn(|c| &input[c * plane_in + y * width..][..width]);
        let target = &mut padded[(y + g.pad_top) * pw + g.pad_left..][..width];
        for x0 in (0..full).step_by(8) {
            let block = std::array::from_fn(|c| load(&rows[c][x0..x0 + 8]));
            for (pixel, vector) in target[x0..x0 + 8].iter_mut().zip(transpose(simd, block)) {
                *pixel = cast(vector);
            }
        }
        for (x, pixel) in target.iter_mut().enumerate().skip(full) {
            *pixel = std::array::from_fn(|c| rows[c][x]);
        }
    }
    // The output pixels, PIXELS of a row at a time.
    let out_w = g.out_w;
    let out_h = out.len() / out_w;
    let whole = out_w - out_w % PIXELS;
    for oy in 0..out_h {
        let base = oy * STRIDE * pw;
        let out_row = &mut out[oy * out_w..][..out_w];
        for x0 in (0..whole).step_by(PIXELS) {
            let acc =
                accumulate::<K, TAPS, STRIDE, PIXELS>(padded, base + x0 * STRIDE, pw, &weights);
            for (i, values) in acc.iter().enumerate() {
                out_row[x0 + i] = *values;
            }
        }
        for (x, pixel) in out_row.iter_mut().enumerate().skip(whole) {
            let [values] =
                accumulate::<K, TAPS, STRIDE, 1>(padded, base + x * STRIDE, pw, &weights);
            *pixel = values;
        }
    }
    // The epilogue, a loop of its own over the group's outputs (in L1 or L2), after the
    // sums: its iterations overlap, and the sums keep their registers (applied to each
    // block of sums as they came it measured no faster).
    finish_pixels(out, &scale, &shift, epilogue);
    // Out: back to planes, 8 x 8 blocks transposed in registers.
    let plane_out = out.len();
    let full = plane_out - plane_out % 8;
    for p0 in (0..full).step_by(8) {
        let block = std::array::from_fn(|i| cast::<Pixel, __m256>(out[p0 + i]));
        for (c, vector) in transpose(simd, block).into_iter().enumerate() {
            let values: Pixel = cast(vector);
            output[c * plane_out + p0..c * plane_out + p0 + 8].copy_from_slice(&values);
        }
    }
    for (c, plane) in output.chunks_exact_mut(plane_out).enumerate() {
        for (value, pixel) in plane.iter_mut().zip(out.iter()).skip(full) {
            *value = pixel[c];
        }
    }
}

/// The epilogue on pixels, as one loop over their values two pixels (16 values) at a time,
/// each lane with its channel's scale and shift. Written pixel by pixel (an array of 8
/// built per pixel) it cost 0.64-0.73 ns a value on D0's layers (the whole epilogue timed by
/// leaving it out), now 0.48-0.54: `depthwise_shapes`' lanes layers 5-10% faster.
#[inline(always)]
fn finish_pixels(pixels: &mut [Pixel], scale: &Pixel, shift: &Pixel, epilogue: Epilogue) {
    const PAIR: usize = 2 * GROUP;
    let scale: [f32; PAIR] = std::array::from_fn(|i| scale[i % GROUP]);
    let shift: [f32; PAIR] = std::array::from_fn(|i| shift[i % GROUP]);
    let (pairs, last) = pixels.as_flattened_mut().as_chunks_mut::<PAIR>();
    match epilogue {
        Epilogue::AffineSwish => {
            for pair in pairs {
                for lane in 0..PAIR {
                    pair[lane] =
                        finish(pair[lane], scale[lane], shift[lane], Epilogue::AffineSwish);
                }
            }
        }
        Epilogue::Affine => {
            for pair in pairs {
                for lane in 0..PAIR {
                    pair[lane] = finish(pair[lane], scale[lane], shift[lane], Epilogue::Affine);
                }
            }
        }
        Epilogue::None => {}
    }
    for (lane, value) in last.iter_mut().enumerate() {
        *value = finish(*value, scale[lane], shift[lane], epilogue);
    }
}

#[inline(always)]
fn load(values: &[f32]) -> __m256 {
    let values: Pixel = values.try_into().expect("8 values");
    cast(values)
}

/// `P` output pixels of a row, pixel `i`'s tap `(ky, kx)` reading the padded plane at
/// `start + i * STRIDE + ky * pitch + kx`: a multiply of whole pixels, then an add.
#[inline(always)]
fn accumulate<const K: usize, const TAPS: usize, const STRIDE: usize, const P: usize>(
    padded: &[Pixel],
    start: usize,
    pitch: usize,
    weights: &[Pixel; TAPS],
) -> [Pixel; P] {
    let mut acc = [[0f32; GROUP]; P];
    for ky in 0..K {
        // The tap row's pixels, sliced once: the indices below are constants.
        let row = &padded[start + ky * pitch..][..(P - 1) * STRIDE + K];
        for kx in 0..K {
            let w = &weights[ky * K + kx];
            for i in 0..P {
                let x = &row[i * STRIDE + kx];
                for c in 0..GROUP {
                    acc[i][c] += w[c] * x[c];
                }
            }
        }
    }
    acc
}

/// The transpose of an 8 x 8 block held as 8 row vectors.
#[inline(always)]
fn transpose(simd: V3, r: [__m256; 8]) -> [__m256; 8] {
    let avx = simd.avx;
    let t0 = avx._mm256_unpacklo_ps(r[0], r[1]);
    let t1 = avx._mm256_unpackhi_ps(r[0], r[1]);
    let t2 = avx._mm256_unpacklo_ps(r[2], r[3]);
    let t3 = avx._mm256_unpackhi_ps(r[2], r[3]);
    let t4 = avx._mm256_unpacklo_ps(r[4], r[5]);
    let t5 = avx._mm256_unpackhi_ps(r[4], r[5]);
    let t6 = avx._mm256_unpacklo_ps(r[6], r[7]);
    let t7 = avx._mm256_unpackhi_ps(r[6], r[7]);
    let u0 = avx._mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = avx._mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = avx._mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = avx._mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = avx._mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = avx._mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = avx._mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = avx._mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        avx._mm256_permute2f128_ps::<0x20>(u0, u4),
        avx._mm256_permute2f128_ps::<0x20>(u1, u5),
        avx._mm256_permute2f128_ps::<0x20>(u2, u6),
        avx._mm256_permute2f128_ps::<0x20>(u3, u7),
        avx._mm256_permute2f128_ps::<0x31>(u0, u4),
        avx._mm256_permute2f128_ps::<0x31>(u1, u5),
        avx._mm256_permute2f128_ps::<0x31>(u2, u6),
        avx._mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}
