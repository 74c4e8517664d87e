//! Inference fast paths on the CPU: batch norm (running statistics) fused with swish in one
//! pass over the data, and a vectorisable swish.
//!
//! Profiling D0 on Burn's `flex` backend showed 40% of the forward time in `swish` and
//! `sigmoid` (a scalar `expf` per element) and several more passes per batch norm. On a
//! device without autodiff these helpers take the tensor's data, apply
//! `y = swish(x * scale[c] + shift[c])` with a polynomial `exp` (relative error ~1e-7) in one
//! loop the compiler vectorises, and hand the data back. On an autodiff device they fall back
//! to Burn's ops, except swish, which is [`crate::act::swish_train`] there (a fused custom op
//! on autodiff flex, Burn's `silu` elsewhere).

use burn::nn::BatchNorm;
use burn::tensor::{Tensor, TensorData};

#[cfg(target_arch = "x86_64")]
mod lanes;

/// `exp(x)` for `f32`: range reduction `x = k ln 2 + r`, a degree-5 polynomial for `e^r` fitted
/// for relative error (7.5e-8 over |r| <= ln 2 / 2; about 2e-7 in all over the clamped range
/// [-87, 88], against 2.2e-7 for the degree-6 Taylor polynomial it replaced), and `k` added
/// to the result's exponent bits. Branch-free, so loops over it vectorise. Reduction and
/// polynomial are fused multiply-adds: one instruction each on AVX2 and AVX-512, and the
/// same correctly rounded result on every instruction set (the x86-64 baseline calls libm's
/// `fmaf`, slowly). Swish costs 0.36 ns a value in a vectorised loop here (0.41 with the
/// Taylor polynomial and a multiply by `2^k`; 0.86 in the product's epilogue before the fused
/// multiply-adds).
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
    // The low mantissa bits of `shifted` hold k; integer ops on the bits keep this vectorised
    // (a float-to-int `as` cast would saturate element by element).
    let k = shifted - MAGIC;
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
    let p = 0.008_297_638f32
        .mul_add(r, 0.041_915_365)
        .mul_add(r, 0.166_675_75)
        .mul_add(r, 0.499_988_94)
        .mul_add(r, 0.999_999_7)
        .mul_add(r, 1.000_000_1);
    // p * 2^k as an integer add to p's exponent: p is in [0.7, 1.42] and, with x clamped,
    // k in [-126, 127], so the exponent stays in the normal range.
    let k_bits = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) << 23;
    f32::from_bits(p.to_bits().wrapping_add(k_bits))
}

#[inline(always)]
fn swish_scalar(y: f32) -> f32 {
    y / (1.0 + fast_exp(-y))
}

/// Runs `f` compiled for the widest instruction set this CPU has (AVX-512, AVX2 + FMA, or
/// the x86-64 baseline), picked at run time by `pulp`: the loops inside vectorise to that
/// width when `f`'s body inlines. Mark the closure `#[inline(always)]`
/// (`simd(#[inline(always)] || kernel(...))`, `kernel` itself `#[inline(always)]`): unmarked,
/// a closure called from the three variants is often compiled once, for the baseline, and
/// called from all of them (in the training kernels that left the loops scalar); larger
/// bodies go through a [`pulp::WithSimd`] type, as the kernels below do. Element-wise loops
/// give the same bits on every instruction set: Rust never fuses a multiply and an add on its
/// own, and no loop here reorders a sum.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// [`affine_act_planes`] as a [`pulp::WithSimd`] operation, so that it is inlined into
/// every instruction-set variant.
struct AffineAct<'a> {
    values: &'a mut [f32],
    plane: usize,
    scale: &'a [f32],
    shift: &'a [f32],
    activate: bool,
}

impl pulp::WithSimd for AffineAct<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        affine_act_planes(
            self.values,
            self.plane,
            self.scale,
            self.shift,
            self.activate,
        );
    }
}

/// [`depthwise_plane`] as a [`pulp::WithSimd`] operation.
struct DepthwisePlane<'a> {
    geometry: &'a PlaneGeometry,
    scratch: &'a mut Scratch,
    input_plane: &'a [f32],
    filter: &'a [f32],
    scale: f32,
    shift: f32,
    epilogue: Epilogue,
    out_plane: &'a mut [f32],
}

impl pulp::WithSimd for DepthwisePlane<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        depthwise_plane(
            self.geometry,
            self.scratch,
            self.input_plane,
            self.filter,
            self.scale,
            self.shift,
            self.epilogue,
            self.out_plane,
        );
    }
}

fn into_values(x: Tensor<4>) -> ([usize; 4], Vec<f32>) {
    let dims = x.dims();
    let values = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("float tensors hold f32");
    (dims, values)
}

fn from_values(dims: [usize; 4], values: Vec<f32>, device: &burn::tensor::Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// Swish (`x * sigmoid(x)`).
pub fn swish(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() {
        return crate::act::swish_train(x);
    }
    let (dims, mut values) = into_values(x);
    simd(
        #[inline(always)]
        || values.iter_mut().for_each(|v| *v = swish_scalar(*v)),
    );
    from_values(dims, values, &device)
}

/// Per-channel `(scale, shift)` of a batch norm's inference transform.
pub fn batch_norm_affine(bn: &BatchNorm) -> (Vec<f32>, Vec<f32>) {
    let gamma: Vec<f32> = bn.gamma.val().into_data().iter::<f32>().collect();
    let beta: Vec<f32> = bn.beta.val().into_data().iter::<f32>().collect();
    let mean: Vec<f32> = bn.running_mean.value().into_data().iter::<f32>().collect();
    let var: Vec<f32> = bn.running_var.value().into_data().iter::<f32>().collect();
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + bn.epsilon as f32).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

/// `y = x * scale[c] + shift[c]` (then swish when `activate`) over planes of `plane` values,
/// channel `c` = plane index modulo `scale.len()`. Inlined into [`simd`]'s variants.
#[inline(always)]
fn affine_act_planes(
    values: &mut [f32],
    plane: usize,
    scale: &[f32],
    shift: &[f32],
    activate: bool,
) {
    let channels = scale.len();
    for (index, chunk) in values.chunks_exact_mut(plane).enumerate() {
        let (s, b) = (scale[index % channels], shift[index % channels]);
        if activate {
            chunk.iter_mut().for_each(|v| *v = swish_scalar(*v * s + b));
        } else {
            chunk.iter_mut().for_each(|v| *v = *v * s + b);
        }
    }
}

/// Batch norm, then swish when `activate`: one pass at inference, [`crate::norm::batch_norm`]
/// and [`crate::act::swish_train`] in training.
///
/// # Shapes
/// `[batch, channels, h, w]` -> same.
pub fn norm_act(bn: &BatchNorm, x: Tensor<4>, activate: bool) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() {
        let y = crate::norm::batch_norm(bn, x);
        return if activate {
            crate::act::swish_train(y)
        } else {
            y
        };
    }
    let (scale, shift) = batch_norm_affine(bn);
    let (dims, mut values) = into_values(x);
    let [_, _, height, width] = dims;
    pulp::Arch::new().dispatch(AffineAct {
        values: &mut values,
        plane: height * width,
        scale: &scale,
        shift: &shift,
        activate,
    });
    from_values(dims, values, &device)
}

/// Depthwise convolution with TF "same" padding fused with batch norm and (optionally) swish,
/// for inference. Each channel plane is computed row by row: for every kernel tap the output
/// row gets `w * input_row` added (a contiguous, vectorised loop; stride-2 rows are split into
/// even and odd samples first), then the norm and activation run on the finished row.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`
/// - `weight`: `[channels, 1, k, k]`
/// - output: `[batch, channels, ceil(h / stride), ceil(w / stride)]`
pub fn depthwise_norm_act(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: usize,
    bn: &BatchNorm,
    activate: bool,
) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() || !(stride == 1 || stride == 2) {
        let y = crate::dwconv::depthwise_conv2d_same(x, weight, stride);
        return norm_act(bn, y, activate);
    }
    let (scale, shift) = batch_norm_affine(bn);
    depthwise_affine(x, weight, stride, Some((&scale, &shift)), activate)
}

/// A depthwise convolution with TF "same" padding and no bias at inference (stride 1 or 2),
/// the kernel of [`depthwise_norm_act`] without a norm: the separable convolutions of the
/// BiFPN and the heads. Burn's op on an autodiff device or another stride.
///
/// # Shapes
/// As [`depthwise_norm_act`].
pub fn depthwise_same(x: Tensor<4>, weight: Tensor<4>, stride: usize) -> Tensor<4> {
    if x.device().is_autodiff() || !(stride == 1 || stride == 2) {
        return crate::dwconv::depthwise_conv2d_same(x, weight, stride);
    }
    depthwise_affine(x, weight, stride, None, false)
}

/// The shape of one depthwise plane computation, the inference kernels' and the training
/// op's ([`crate::dwconv`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlaneGeometry {
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) pad_top: usize,
    pub(crate) pad_left: usize,
    pub(crate) padded_h: usize,
    pub(crate) padded_w: usize,
    /// Stride 2: width of the even-column half of a split row.
    pub(crate) even_w: usize,
    pub(crate) out_w: usize,
}

impl PlaneGeometry {
    /// A `kernel x kernel` window at `stride` over `height x width` planes, TF "same"
    /// padding.
    pub(crate) fn new([height, width]: [usize; 2], kernel: usize, stride: usize) -> Self {
        let (pad_top, pad_bottom) = crate::conv::same_padding(height, kernel, stride);
        let (pad_left, pad_right) = crate::conv::same_padding(width, kernel, stride);
        let padded_w = width + pad_left + pad_right;
        Self {
            height,
            width,
            kernel,
            stride,
            pad_top,
            pad_left,
            padded_h: height + pad_top + pad_bottom,
            padded_w,
            even_w: padded_w.div_ceil(2),
            out_w: width.div_ceil(stride),
        }
    }

    /// Zeroes the padding of an unsplit padded plane whose cells are `cell` values each
    /// (stride 1, or the channels-in-lanes layout), leaving its interior as it is: a
    /// recycled buffer then needs no zeroing of the values every plane overwrites.
    fn zero_padding(&self, padded: &mut [f32], cell: usize) {
        let row = self.padded_w * cell;
        let (left, width) = (self.pad_left * cell, self.width * cell);
        let interior = self.pad_top..self.pad_top + self.height;
        for (y, values) in padded.chunks_exact_mut(row).take(self.padded_h).enumerate() {
            if interior.contains(&y) {
                values[..left].fill(0.0);
                values[left + width..].fill(0.0);
            } else {
                values.fill(0.0);
            }
        }
    }

    /// Writes `input`'s rows into the interior of `padded` (its padding left as it is): each
    /// row as is at stride 1, split into its even and odd padded columns at stride 2
    /// ([`split_row`]), so that every tap of an output row reads a contiguous run.
    #[inline(always)]
    pub(crate) fn pad_plane(&self, input: &[f32], padded: &mut [f32]) {
        for (row, source) in input.chunks_exact(self.width).enumerate() {
            let base = (row + self.pad_top) * self.padded_w;
            if self.stride == 1 {
                padded[base + self.pad_left..base + self.pad_left + self.width]
                    .copy_from_slice(source);
            } else {
                let (even, odd) = padded[base..base + self.padded_w].split_at_mut(self.even_w);
                split_row(source, self.pad_left, even, odd);
            }
        }
    }

    /// Where tap column `kx` of a padded row starts (stride 2: in the even or the odd half);
    /// the same as where padded column `kx` itself lies in a split row.
    #[inline(always)]
    pub(crate) fn tap_column(&self, kx: usize) -> usize {
        match (self.stride, kx % 2) {
            (1, _) => kx,
            (_, 0) => kx / 2,
            _ => self.even_w + kx / 2,
        }
    }
}

/// What runs on each finished output row.
#[derive(Clone, Copy)]
enum Epilogue {
    None,
    Affine,
    AffineSwish,
}

/// One channel plane of the depthwise kernel: the zero-padded plane, each row either as is
/// (stride 1) or as its even padded columns followed by its odd ones (stride 2), so every tap
/// reads a contiguous run; then for every output row and tap `row += w * input_run`, and the
/// epilogue. Inlined into [`simd`]'s instruction-set variants.
#[inline(always)]
fn depthwise_plane(
    g: &PlaneGeometry,
    scratch: &mut Scratch,
    input_plane: &[f32],
    filter: &[f32],
    s: f32,
    b: f32,
    epilogue: Epilogue,
    out_plane: &mut [f32],
) {
    let Scratch { padded, flat } = scratch;
    g.pad_plane(input_plane, padded);
    match (g.kernel, g.stride) {
        (3, 1) => depthwise_flat::<3, 9, 18>(g, padded, flat, filter, s, b, epilogue, out_plane),
        (5, 1) => depthwise_flat::<5, 25, 20>(g, padded, flat, filter, s, b, epilogue, out_plane),
        (3, _) => depthwise_rows::<3, 9, 17>(g, padded, filter, s, b, epilogue, out_plane),
        (5, _) => depthwise_rows::<5, 25, 18>(g, padded, filter, s, b, epilogue, out_plane),
        _ => depthwise_rows_any(g, padded, filter, s, b, epilogue, out_plane),
    }
}

/// Writes a row of `source` into a stride-2 padded row split into its even and odd columns:
/// padded column `c = i + pad_left` goes to `even[c / 2]` or `odd[c / 2]`. After a leading
/// odd column the values come in (even, odd) pairs of the same index: a loop without
/// branches that the compiler vectorises (the branch per value measured 1.5x slower on D0's
/// largest stride-2 layer), eight pairs at a time (pair by pair it used 4-wide vectors and
/// a scalar tail per row: D0's 672 x 32^2 5x5 stride-2 layer 0.69 -> 0.61 ms). The
/// inference kernels and the training depthwise op ([`crate::dwconv`]) pad through it.
#[inline(always)]
fn split_row(source: &[f32], pad_left: usize, even: &mut [f32], odd: &mut [f32]) {
    let mut rest = source;
    if pad_left % 2 == 1 {
        odd[pad_left / 2] = source[0];
        rest = &source[1..];
    }
    let start = pad_left.div_ceil(2);
    let (pairs, last) = rest.as_chunks::<2>();
    let end = start + pairs.len();
    let (even_run, odd_run) = (&mut even[start..end], &mut odd[start..end]);
    let (blocks, tail) = pairs.as_chunks::<8>();
    let whole = blocks.len() * 8;
    for ((e, o), block) in even_run[..whole]
        .as_chunks_mut::<8>()
        .0
        .iter_mut()
        .zip(odd_run[..whole].as_chunks_mut::<8>().0)
        .zip(blocks)
    {
        *e = std::array::from_fn(|j| block[j][0]);
        *o = std::array::from_fn(|j| block[j][1]);
    }
    for ((e, o), [a, b]) in even_run[whole..]
        .iter_mut()
        .zip(&mut odd_run[whole..])
        .zip(tail)
    {
        *e = *a;
        *o = *b;
    }
    if let [value] = last {
        even[end] = *value;
    }
}

/// Buffers one depthwise call reuses for each of its planes: the zero-padded input plane
/// (its padding stays zero: every plane writes the same interior positions) and the flat
/// stride-1 output run.
struct Scratch {
    padded: Vec<f32>,
    flat: Vec<f32>,
}

impl Scratch {
    /// From this thread's recycled buffers ([`crate::scratch`]): at stride 1 only the
    /// padding is zeroed (zeroing whole fresh buffers was 3% of a 32 x 256^2 layer), at
    /// stride 2 (rows split into even and odd columns) the whole plane.
    fn new(g: &PlaneGeometry, out_plane: usize) -> Self {
        let out_h = out_plane / g.out_w;
        // Slack of a block of lanes after each: the flat run ends on a whole block.
        let plane = g.padded_h * g.padded_w;
        let mut padded = crate::scratch::take(plane + LANES);
        if g.stride == 1 {
            g.zero_padding(&mut padded[..plane], 1);
            padded[plane..].fill(0.0);
        } else {
            padded.fill(0.0);
        }
        Self {
            padded,
            flat: crate::scratch::take(
                ((out_h - 1) * g.padded_w + g.out_w).next_multiple_of(LANES),
            ),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        crate::scratch::recycle(std::mem::take(&mut self.padded));
        crate::scratch::recycle(std::mem::take(&mut self.flat));
    }
}

/// A stride-1 `K x K` depthwise plane as one run over the padded plane: output `(y, x)` is
/// computed at flat index `y * padded_w + x`, where every tap reads the padded plane at a
/// constant offset, so `LANES` outputs accumulate all taps in registers across row ends
/// too (short rows of small pyramid levels waste no lanes); the `K - 1` padding columns of
/// each row are computed and dropped when the rows are copied out through the epilogue.
/// The run is rounded up to whole blocks of lanes (a scalar tail of up to 15 outputs x 25
/// taps was a fifth of a 16 x 16 plane: D0's 1152 x 16^2 5x5 layer 0.91 -> 0.70 ms).
#[inline(always)]
fn depthwise_flat<const K: usize, const TAPS: usize, const W: usize>(
    g: &PlaneGeometry,
    padded: &[f32],
    flat: &mut [f32],
    filter: &[f32],
    s: f32,
    b: f32,
    epilogue: Epilogue,
    out_plane: &mut [f32],
) {
    let (pw, out_w) = (g.padded_w, g.out_w);
    let out_h = out_plane.len() / out_w;
    let span = (out_h - 1) * pw + out_w;
    let taps = PlaneTaps::<K, TAPS, 1, W>::new(padded, pw, pw, 0, filter);
    // The run rounded up to a block of lanes: the last block's extra outputs read the
    // padded plane's zero slack and are never copied out (no scalar tail).
    let flat = &mut flat[..span.next_multiple_of(LANES)];
    let wide = flat.len() - flat.len() % (BLOCK_ROWS * LANES);
    for i0 in (0..wide).step_by(BLOCK_ROWS * LANES) {
        let starts: [usize; BLOCK_ROWS] = std::array::from_fn(|r| i0 + r * LANES);
        let acc = taps.accumulate(&starts);
        for (r, values) in acc.iter().enumerate() {
            flat[starts[r]..starts[r] + LANES].copy_from_slice(values);
        }
    }
    for i0 in (wide..flat.len()).step_by(LANES) {
        let [values] = taps.accumulate(&[i0]);
        flat[i0..i0 + LANES].copy_from_slice(&values);
    }
    for (oy, out_row) in out_plane.chunks_exact_mut(out_w).enumerate() {
        let row = &flat[oy * pw..oy * pw + out_w];
        for (out, &value) in out_row.iter_mut().zip(row) {
            *out = finish(value, s, b, epilogue);
        }
    }
}

/// The width in bytes of the vectors `pulp` picks on this CPU (64 on AVX-512, 32 on AVX2).
pub(crate) fn vector_bytes() -> usize {
    struct VectorBytes;
    impl pulp::WithSimd for VectorBytes {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) -> usize {
            core::mem::size_of::<S::f32s>()
        }
    }
    pulp::Arch::new().dispatch(VectorBytes)
}

/// Output lanes accumulated together in registers (one AVX-512 vector of `f32`).
const LANES: usize = 16;

#[inline(always)]
fn finish(value: f32, s: f32, b: f32, epilogue: Epilogue) -> f32 {
    match epilogue {
        Epilogue::AffineSwish => swish_scalar(value * s + b),
        Epilogue::Affine => value * s + b,
        Epilogue::None => value,
    }
}

/// Output rows (or runs of `LANES` outputs) the depthwise kernel computes together. Each tap adds
/// to every accumulator: with one row's two vectors of accumulators, every tap waited for the
/// previous tap's add (its latency, 3 cycles, per tap); `BLOCK_ROWS` rows give 8 independent
/// chains, so the adds overlap (`depthwise_shapes`: D0's layers 27.6-28.2 -> 25.7-26.4 ms, the
/// stride-2 5x5 ones 1.3-1.7x faster).
const BLOCK_ROWS: usize = 4;

/// What a depthwise tap kernel reads: the `K x K` taps of the outputs starting at `start`
/// in `source` (a row's first output at `oy * row_step`, or any flat index at stride 1) read
/// tap row `ky` from `start + ky * pitch`, as is at `STRIDE` 1, or from the even half there
/// and the odd half at `+ odd` at `STRIDE` 2 (rows split by [`split_row`]): tap `(ky, kx)`
/// reads column `kx / STRIDE` of that run. `W`, the width of the window of a tap row that
/// `LANES` outputs read, is `LANES + (K - 1) / STRIDE`.
struct PlaneTaps<'a, const K: usize, const TAPS: usize, const STRIDE: usize, const W: usize> {
    source: &'a [f32],
    row_step: usize,
    pitch: usize,
    odd: usize,
    weights: [f32; TAPS],
    /// Where each tap reads, from the output's start.
    offsets: [usize; TAPS],
}

impl<'a, const K: usize, const TAPS: usize, const STRIDE: usize, const W: usize>
    PlaneTaps<'a, K, TAPS, STRIDE, W>
{
    /// The taps of `filter` (`K x K`, row-major) over `source`.
    #[inline(always)]
    fn new(source: &'a [f32], row_step: usize, pitch: usize, odd: usize, filter: &[f32]) -> Self {
        Self {
            source,
            row_step,
            pitch,
            odd,
            weights: std::array::from_fn(|tap| filter[tap]),
            offsets: std::array::from_fn(|tap| {
                let (ky, kx) = (tap / K, tap % K);
                ky * pitch + (kx % STRIDE) * odd + kx / STRIDE
            }),
        }
    }

    /// `R` independent runs of `LANES` outputs: run `r` sums `w[tap] * source[starts[r] +
    /// offsets[tap]..][..LANES]` over the taps in order (a multiply, then an add: the sum
    /// order of [`depthwise_rows_any`] and of the tails; fused multiply-adds measured
    /// slower, their longer latency on each accumulator's chain of 25 taps). For 5x5 taps
    /// each tap row's window is sliced once (one bounds check where there were five, the
    /// columns inside it constants): D0's 5x5 layers 4-12% faster. The loops unroll, so
    /// the `R` accumulators' adds overlap.
    #[inline(always)]
    fn accumulate<const R: usize>(&self, starts: &[usize; R]) -> [[f32; LANES]; R] {
        debug_assert_eq!(W, LANES + (K - 1) / STRIDE);
        let window = |start: usize| -> &[f32; W] {
            self.source[start..start + W]
                .try_into()
                .expect("a window of a tap row")
        };
        let mut acc = [[0f32; LANES]; R];
        if K == 3 {
            // A slice per tap: with windows, LLVM builds a 3x3 window's shifted runs from its
            // aligned vectors by shuffles, which measured 15-20% slower than the loads.
            for tap in 0..TAPS {
                let w = self.weights[tap];
                for r in 0..R {
                    let start = starts[r] + self.offsets[tap];
                    let values: &[f32; LANES] = self.source[start..start + LANES]
                        .try_into()
                        .expect("a full block of lanes");
                    for lane in 0..LANES {
                        acc[r][lane] += w * values[lane];
                    }
                }
            }
            return acc;
        }
        for ky in 0..K {
            for r in 0..R {
                let base = starts[r] + ky * self.pitch;
                let even = window(base);
                let odd = if STRIDE == 1 {
                    even
                } else {
                    window(base + self.odd)
                };
                for kx in 0..K {
                    let w = self.weights[ky * K + kx];
                    let run = if kx % STRIDE == 0 { even } else { odd };
                    let column = kx / STRIDE;
                    let values: &[f32; LANES] = run[column..column + LANES]
                        .try_into()
                        .expect("a run of lanes inside the window");
                    for lane in 0..LANES {
                        acc[r][lane] += w * values[lane];
                    }
                }
            }
        }
        acc
    }
}

/// The rows of a `K x K` depthwise plane, [`BLOCK_ROWS`] at a time ([`tap_rows`]): tap `t`
/// of output row `oy` reads the padded plane from `oy * stride * padded_w + offsets[t]` on
/// (tap order `ky`-major, the sum order of [`depthwise_rows_any`]).
#[inline(always)]
fn depthwise_rows<const K: usize, const TAPS: usize, const W: usize>(
    g: &PlaneGeometry,
    padded: &[f32],
    filter: &[f32],
    s: f32,
    b: f32,
    epilogue: Epilogue,
    out_plane: &mut [f32],
) {
    assert_eq!(g.stride, 2, "the rows kernel runs stride 2");
    let taps =
        PlaneTaps::<K, TAPS, 2, W>::new(padded, 2 * g.padded_w, g.padded_w, g.even_w, filter);
    tap_rows(&taps, s, b, epilogue, g.out_w, out_plane);
}

/// The output rows of a depthwise plane: [`BLOCK_ROWS`] rows at a time accumulate every tap
/// in registers, `LANES` outputs of each, then the epilogue and one store; the last rows
/// fewer at a time, and each row's tail one output at a time, in the same order.
#[inline(always)]
fn tap_rows<const K: usize, const TAPS: usize, const STRIDE: usize, const W: usize>(
    taps: &PlaneTaps<K, TAPS, STRIDE, W>,
    s: f32,
    b: f32,
    epilogue: Epilogue,
    out_w: usize,
    out_plane: &mut [f32],
) {
    for (block, out_rows) in out_plane.chunks_mut(BLOCK_ROWS * out_w).enumerate() {
        let first = block * BLOCK_ROWS;
        match out_rows.len() / out_w {
            4 => tap_block::<K, TAPS, STRIDE, W, 4>(taps, first, s, b, epilogue, out_rows),
            3 => tap_block::<K, TAPS, STRIDE, W, 3>(taps, first, s, b, epilogue, out_rows),
            2 => tap_block::<K, TAPS, STRIDE, W, 2>(taps, first, s, b, epilogue, out_rows),
            _ => tap_block::<K, TAPS, STRIDE, W, 1>(taps, first, s, b, epilogue, out_rows),
        }
    }
}

/// `R` output rows from row `first` on, `out_rows` `[R, out_w]`.
#[inline(always)]
fn tap_block<
    const K: usize,
    const TAPS: usize,
    const STRIDE: usize,
    const W: usize,
    const R: usize,
>(
    taps: &PlaneTaps<K, TAPS, STRIDE, W>,
    first: usize,
    s: f32,
    b: f32,
    epilogue: Epilogue,
    out_rows: &mut [f32],
) {
    let out_w = out_rows.len() / R;
    let bases: [usize; R] = std::array::from_fn(|r| (first + r) * taps.row_step);
    let full = out_w - out_w % LANES;
    for x0 in (0..full).step_by(LANES) {
        let starts: [usize; R] = std::array::from_fn(|r| bases[r] + x0);
        let acc = taps.accumulate(&starts);
        for (r, values) in acc.iter().enumerate() {
            let out: &mut [f32; LANES] = (&mut out_rows[r * out_w + x0..r * out_w + x0 + LANES])
                .try_into()
                .expect("a full block of lanes");
            for lane in 0..LANES {
                out[lane] = finish(values[lane], s, b, epilogue);
            }
        }
    }
    for (r, out_row) in out_rows.chunks_exact_mut(out_w).enumerate() {
        for (x, out) in out_row.iter_mut().enumerate().skip(full) {
            let mut acc = 0f32;
            for tap in 0..TAPS {
                acc += taps.weights[tap] * taps.source[bases[r] + taps.offsets[tap] + x];
            }
            *out = finish(acc, s, b, epilogue);
        }
    }
}

/// A dense 3x3 stride-2 convolution of a 3-channel image with TF "same" padding, then `+
/// bias[o]` and (when `activate`) swish: the stem. Each input channel's zero-padded plane is
/// split into even and odd columns once, so that every tap of an output row is one
/// contiguous run; then the 1x1 product's kernel ([`crate::matmul::product`]) gathers those
/// runs straight into its packed panels (an im2col without the 27-row matrix, larger than
/// the image) and computes 6 output channels x 16 pixels per register block, loading each
/// input value once for six channels (per channel, a tap kernel measured 6.2-8.3 ms at
/// 512 px against 4.3-4.6).
///
/// # Shapes
/// `input` `[3, height, width]`, `weights` `[out, 3, 3, 3]` (row-major) ->
/// `[out, ceil(height / 2), ceil(width / 2)]`.
pub fn stem_conv3x3_s2(
    input: &[f32],
    [height, width]: [usize; 2],
    weights: &[f32],
    bias: &[f32],
    activate: bool,
) -> Vec<f32> {
    const IN: usize = 3;
    const TAPS: usize = IN * 9;
    let out_channels = bias.len();
    assert_eq!(input.len(), IN * height * width, "a 3-channel image");
    assert_eq!(
        weights.len(),
        out_channels * TAPS,
        "3x3 weights over 3 channels"
    );
    let stride = 2;
    let g = PlaneGeometry::new([height, width], 3, stride);
    let out_h = height.div_ceil(stride);
    let plane_out = out_h * g.out_w;
    // The three split planes, side by side.
    let padded_plane = g.padded_h * g.padded_w;
    let mut padded = vec![0f32; IN * padded_plane];
    for (plane, target) in input
        .chunks_exact(height * width)
        .zip(padded.chunks_exact_mut(padded_plane))
    {
        g.pad_plane(plane, target);
    }
    // Tap t: input channel t / 9, row (t / 3) % 3, column t % 3 (the weights' order).
    let offsets: [usize; TAPS] = std::array::from_fn(|tap| {
        (tap / 9) * padded_plane + ((tap / 3) % 3) * g.padded_w + g.tap_column(tap % 3)
    });
    let columns = crate::matmul::Columns::Taps {
        source: &padded,
        row_step: stride * g.padded_w,
        out_w: g.out_w,
        offsets: &offsets,
    };
    let epilogue = crate::matmul::PointwiseEpilogue {
        bias,
        addend: None,
        swish: activate,
        residual: None,
    };
    crate::matmul::product(weights, [out_channels, TAPS, plane_out], columns, epilogue)
}

/// The rows of a depthwise plane of any kernel size: per tap, `row += w * input_run`.
fn depthwise_rows_any(
    g: &PlaneGeometry,
    padded: &[f32],
    filter: &[f32],
    s: f32,
    b: f32,
    epilogue: Epilogue,
    out_plane: &mut [f32],
) {
    let kernel = g.kernel;
    for (oy, out_row) in out_plane.chunks_exact_mut(g.out_w).enumerate() {
        // The output comes from recycled buffers ([`crate::scratch`]): the sums start here.
        out_row.fill(0.0);
        for ky in 0..kernel {
            let row = oy * g.stride + ky;
            for kx in 0..kernel {
                let w = filter[ky * kernel + kx];
                let start = row * g.padded_w + g.tap_column(kx);
                let source = &padded[start..start + g.out_w];
                for (o, i) in out_row.iter_mut().zip(source) {
                    *o += w * i;
                }
            }
        }
        out_row
            .iter_mut()
            .for_each(|v| *v = finish(*v, s, b, epilogue));
    }
}

/// The depthwise kernel: each output row, then `y * scale[c] + shift[c]` (when given) and
/// swish (when `activate`) on it.
fn depthwise_affine(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: usize,
    affine: Option<(&[f32], &[f32])>,
    activate: bool,
) -> Tensor<4> {
    let device = x.device();
    let [batch, channels, height, width] = x.dims();
    let [weight_channels, _, kernel, _] = weight.dims();
    assert_eq!(
        weight_channels, channels,
        "depthwise weight must have one filter per channel"
    );
    let weights: Vec<f32> = weight.into_data().iter::<f32>().collect();
    let (_, input) = into_values(x);
    let output = depthwise_planes(
        &input,
        [batch * channels, height, width],
        channels,
        &weights,
        kernel,
        stride,
        affine,
        activate,
    );
    let [out_h, out_w] = [height.div_ceil(stride), width.div_ceil(stride)];
    from_values([batch, channels, out_h, out_w], output, &device)
}

/// Below this many output values a kernel runs on the calling thread: handing a batch-1
/// layer of a small pyramid level to another thread costs more than computing it.
pub const PARALLEL_MIN_OUTPUTS: usize = 1 << 15;

/// The depthwise kernel on plain data: `planes` planes of `height x width` (plane `p` is
/// channel `p % channels`), `weights` `[channels, kernel, kernel]`, TF "same" padding, stride
/// 1 or 2, then per channel `y * scale + shift` when `affine` is given and swish when
/// `activate`. Returns the `planes` output planes of `ceil(height / stride) x
/// ceil(width / stride)`. Planes run in parallel (rayon) when the output is large. On AVX2,
/// stride-2 layers and 5x5 layers of small planes run with groups of 8 channels in a
/// vector's lanes instead (`fast/lanes.rs`), with the same result bits.
pub fn depthwise_planes(
    input: &[f32],
    shape: [usize; 3],
    channels: usize,
    weights: &[f32],
    kernel: usize,
    stride: usize,
    affine: Option<(&[f32], &[f32])>,
    activate: bool,
) -> Vec<f32> {
    let filters = Filters {
        weights,
        kernel,
        stride,
        affine,
        activate,
    };
    depthwise_planes_in(input, shape, channels, filters, Layout::Auto, false).0
}

/// [`depthwise_planes`] with its filters in one [`Filters`], and the mean of each output
/// plane ([`plane_mean`]: the bits of the same mean taken afterwards), each taken as soon as
/// its plane is written, while it is still in cache and on the thread that wrote it: a
/// squeeze-excite gate's global pooling without another pass over the map.
pub fn depthwise_planes_with_means(
    input: &[f32],
    shape: [usize; 3],
    channels: usize,
    filters: Filters,
) -> (Vec<f32>, Vec<f32>) {
    let (output, means) = depthwise_planes_in(input, shape, channels, filters, Layout::Auto, true);
    (output, means.unwrap_or_default())
}

/// The mean of `values`, summed in a fixed order that vectorises (16 interleaved partial
/// sums, then those in order, then the tail), so that it does not depend on the instruction
/// set.
#[inline(always)]
pub fn plane_mean(values: &[f32]) -> f32 {
    const PARTIALS: usize = 16;
    let mut partial = [0f32; PARTIALS];
    let (chunks, tail) = values.as_chunks::<PARTIALS>();
    for chunk in chunks {
        for (sum, value) in partial.iter_mut().zip(chunk) {
            *sum += value;
        }
    }
    let mut total = 0f32;
    for sum in partial {
        total += sum;
    }
    for value in tail {
        total += value;
    }
    total / values.len() as f32
}

/// [`plane_mean`] of each `plane`-long piece of `values`, into `means`.
pub fn plane_means(values: &[f32], plane: usize, means: &mut [f32]) {
    simd(
        #[inline(always)]
        || {
            for (mean, values) in means.iter_mut().zip(values.chunks_exact(plane)) {
                *mean = plane_mean(values);
            }
        },
    );
}

/// The filters of a depthwise layer, as [`depthwise_planes`] takes them one by one.
#[derive(Clone, Copy, Debug)]
pub struct Filters<'a> {
    /// `[channels, kernel, kernel]`.
    pub weights: &'a [f32],
    /// 3, 5, or any size on the generic path.
    pub kernel: usize,
    /// 1 or 2.
    pub stride: usize,
    /// Per channel `(scale, shift)` after the sums, when given.
    pub affine: Option<(&'a [f32], &'a [f32])>,
    /// Swish after the affine.
    pub activate: bool,
}

/// Which kernel [`depthwise_planes_in`] runs: one plane at a time, or (on AVX2, channels a
/// multiple of [`lanes::GROUP`], 3x3 or 5x5) groups of channels in lanes; `Auto` picks
/// the one measured faster for the shape. Both give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Auto,
    Planes,
    #[cfg_attr(not(test), allow(dead_code))]
    Lanes,
}

/// [`depthwise_planes`] on the kernel `layout` asks for.
fn depthwise_planes_in(
    input: &[f32],
    [planes, height, width]: [usize; 3],
    channels: usize,
    filters: Filters,
    layout: Layout,
    with_means: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let Filters {
        weights,
        kernel,
        stride,
        affine,
        activate,
    } = filters;
    assert!(stride == 1 || stride == 2, "depthwise stride {stride}");
    let geometry = PlaneGeometry::new([height, width], kernel, stride);
    let plane_in = height * width;
    let plane_out = height.div_ceil(stride) * geometry.out_w;
    let taps = kernel * kernel;
    let epilogue = match (activate, affine.is_some()) {
        (true, _) => Epilogue::AffineSwish,
        (false, true) => Epilogue::Affine,
        (false, false) => Epilogue::None,
    };
    // Every output plane is written whole: a recycled buffer needs no zeroing.
    let mut output = crate::scratch::take(planes * plane_out);
    let mut means = vec![0f32; planes];
    let compute = |scratch: &mut Scratch, (index, out_plane, mean): Piece| {
        let channel = index % channels;
        let (s, b) = affine.map_or((1.0, 0.0), |(scale, shift)| {
            (scale[channel], shift[channel])
        });
        pulp::Arch::new().dispatch(DepthwisePlane {
            geometry: &geometry,
            scratch,
            input_plane: &input[index * plane_in..(index + 1) * plane_in],
            filter: &weights[channel * taps..(channel + 1) * taps],
            scale: s,
            shift: b,
            epilogue,
            out_plane,
        });
        if with_means {
            plane_means(out_plane, plane_out, mean);
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = layout;
    #[cfg(target_arch = "x86_64")]
    if layout != Layout::Planes
        && vector_bytes() == 32
        && let Some(simd) = pulp::x86::V3::try_new()
        && channels.is_multiple_of(lanes::GROUP)
        && (kernel == 3 || kernel == 5)
        && (layout == Layout::Lanes || lanes::pays(kernel, stride, plane_in))
    {
        let group_in = lanes::GROUP * plane_in;
        let group_out = lanes::GROUP * plane_out;
        let compute = |scratch: &mut lanes::GroupScratch, (index, output, means): Piece| {
            let channel = (index * lanes::GROUP) % channels;
            let ones = [1f32; lanes::GROUP];
            let zeros = [0f32; lanes::GROUP];
            let channels = channel..channel + lanes::GROUP;
            let (scale, shift) = affine.map_or((&ones[..], &zeros[..]), |(scale, shift)| {
                (&scale[channels.clone()], &shift[channels.clone()])
            });
            let group = lanes::Group {
                input: &input[index * group_in..(index + 1) * group_in],
                filters: &weights[channel * taps..(channel + lanes::GROUP) * taps],
                scale,
                shift,
                epilogue,
                output,
            };
            lanes::depthwise_group(simd, &geometry, scratch, group);
            if with_means {
                plane_means(output, plane_out, means);
            }
        };
        let scratch = || lanes::GroupScratch::new(&geometry, plane_out);
        let pieces = (group_out, &mut means[..], lanes::GROUP);
        for_each_chunk(&mut output, pieces, scratch, compute);
        return (output, with_means.then_some(means));
    }
    let pieces = (plane_out, &mut means[..], 1);
    for_each_chunk(
        &mut output,
        pieces,
        || Scratch::new(&geometry, plane_out),
        compute,
    );
    (output, with_means.then_some(means))
}

/// A piece of a depthwise output for [`for_each_chunk`]: its index, its values, and the
/// means of its planes.
type Piece<'a> = (usize, &'a mut [f32], &'a mut [f32]);

/// `compute(state, (index, chunk, extra))` on each `chunk`-long piece of `output`, where
/// `(chunk, extras, per_chunk)` = `pieces` gives each piece its `per_chunk` values of
/// `extras`: in parallel (rayon), each thread with its own state from `init`, when the
/// output is large; else on the calling thread with one state.
fn for_each_chunk<S>(
    output: &mut [f32],
    (chunk, extras, per_chunk): (usize, &mut [f32], usize),
    init: impl Fn() -> S + Sync + Send,
    compute: impl Fn(&mut S, Piece) + Sync + Send,
) {
    assert_eq!(
        extras.len() / per_chunk,
        output.len() / chunk,
        "extras for every piece"
    );
    if output.len() < PARALLEL_MIN_OUTPUTS {
        let mut state = init();
        let pieces = output
            .chunks_exact_mut(chunk)
            .zip(extras.chunks_exact_mut(per_chunk));
        for (index, (values, extra)) in pieces.enumerate() {
            compute(&mut state, (index, values, extra));
        }
    } else {
        use rayon::prelude::*;
        output
            .par_chunks_exact_mut(chunk)
            .zip(extras.par_chunks_exact_mut(per_chunk))
            .enumerate()
            .for_each_init(init, |state, (index, (values, extra))| {
                compute(state, (index, values, extra))
            });
    }
}

/// Max pooling with TF "same" padding (padding never wins) at inference
/// ([`max_pool_planes`]); Burn's op otherwise.
///
/// # Shapes
/// `[batch, channels, h, w] -> [batch, channels, ceil(h / stride), ceil(w / stride)]`
pub fn max_pool_same(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() || !(stride == 1 || stride == 2) {
        return crate::conv::max_pool_same_burn(x, kernel, stride);
    }
    let [batch, channels, height, width] = x.dims();
    let (_, input) = into_values(x);
    let output = max_pool_planes(&input, [batch * channels, height, width], kernel, stride);
    let [out_h, out_w] = [height.div_ceil(stride), width.div_ceil(stride)];
    from_values([batch, channels, out_h, out_w], output, &device)
}

/// `K x K` max pooling with TF "same" padding (the padding never wins), stride 1 or 2, on
/// `planes` planes of `height x width`: like the depthwise kernel, each plane is padded
/// (with negative infinity) and, at stride 2, split into even and odd columns, so that
/// every tap of an output row is a contiguous run and the row is a vectorised `max` per
/// tap. (A branch per tap and value was 2-3% of a D0 frame in the BiFPN's downsampling.)
///
/// # Panics
/// When `stride` is not 1 or 2, or `input` is not `planes * height * width` values.
pub fn max_pool_planes(
    input: &[f32],
    [planes, height, width]: [usize; 3],
    kernel: usize,
    stride: usize,
) -> Vec<f32> {
    assert!(stride == 1 || stride == 2, "max pool stride {stride}");
    assert_eq!(input.len(), planes * height * width, "max pool input shape");
    let g = PlaneGeometry::new([height, width], kernel, stride);
    let plane_out = height.div_ceil(stride) * g.out_w;
    let mut padded = vec![f32::NEG_INFINITY; g.padded_h * g.padded_w];
    let mut output = crate::scratch::take(planes * plane_out);
    for (in_plane, out_plane) in input
        .chunks_exact(height * width)
        .zip(output.chunks_exact_mut(plane_out.max(1)))
    {
        simd(
            #[inline(always)]
            || max_pool_plane(&g, &mut padded, in_plane, out_plane),
        );
    }
    output
}

/// One plane of [`max_pool_planes`]; `padded` keeps its padding between planes (every plane
/// writes the same interior positions).
#[inline(always)]
fn max_pool_plane(g: &PlaneGeometry, padded: &mut [f32], input: &[f32], out_plane: &mut [f32]) {
    g.pad_plane(input, padded);
    for (oy, out_row) in out_plane.chunks_exact_mut(g.out_w).enumerate() {
        out_row.fill(f32::NEG_INFINITY);
        for ky in 0..g.kernel {
            let row = (oy * g.stride + ky) * g.padded_w;
            for kx in 0..g.kernel {
                let start = row + g.tap_column(kx);
                let taps = &padded[start..start + g.out_w];
                for (out, &value) in out_row.iter_mut().zip(taps) {
                    *out = out.max(value);
                }
            }
        }
    }
}

/// A dense convolution with TF "same" padding as im2col + matrix product, at inference.
/// Meant for the stem (3 input channels, where Burn's direct convolution is slow); Burn's
/// op on an autodiff device.
///
/// # Shapes
/// `x`: `[batch, in, h, w]`, `weight`: `[out, in, k, k]` ->
/// `[batch, out, ceil(h / stride), ceil(w / stride)]`
pub fn conv_im2col(x: Tensor<4>, weight: Tensor<4>, stride: usize) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() {
        return crate::conv::conv2d_same(x, weight, None, stride, 1);
    }
    let [batch, in_channels, height, width] = x.dims();
    let [out_channels, _, kernel, _] = weight.dims();
    let (pad_top, _) = crate::conv::same_padding(height, kernel, stride);
    let (pad_left, _) = crate::conv::same_padding(width, kernel, stride);
    let out_h = height.div_ceil(stride);
    let out_w = width.div_ceil(stride);
    let rows = in_channels * kernel * kernel;
    let (_, input) = into_values(x);
    let mut columns = vec![0f32; batch * rows * out_h * out_w];
    for (block, image_columns) in columns.chunks_exact_mut(rows * out_h * out_w).enumerate() {
        for (row, column_row) in image_columns.chunks_exact_mut(out_h * out_w).enumerate() {
            let channel = row / (kernel * kernel);
            let ky = (row / kernel) % kernel;
            let kx = row % kernel;
            let plane =
                &input[(block * in_channels + channel) * height * width..][..height * width];
            for (oy, out_row) in column_row.chunks_exact_mut(out_w).enumerate() {
                let iy = (oy * stride + ky) as isize - pad_top as isize;
                if iy < 0 || iy >= height as isize {
                    continue;
                }
                let in_row = &plane[iy as usize * width..(iy as usize + 1) * width];
                for (ox, value) in out_row.iter_mut().enumerate() {
                    let ix = (ox * stride + kx) as isize - pad_left as isize;
                    if ix >= 0 && ix < width as isize {
                        *value = in_row[ix as usize];
                    }
                }
            }
        }
    }
    let columns: Tensor<3> = Tensor::from_data(
        TensorData::new(columns, [batch, rows, out_h * out_w]),
        &device,
    );
    let matrix = weight.reshape([1, out_channels, rows]);
    matrix
        .matmul(columns)
        .reshape([batch, out_channels, out_h, out_w])
}

/// A 1x1 convolution followed by batch norm and (optionally) swish, with an optional
/// squeeze-excite `gate` on its input. At inference the norm is folded into the weights and
/// a bias (`W' = W * scale`, `b' = shift`) and, at batch 1, the gate into the weights' input
/// columns (`W (x * g) = (W * g) x`), so the only pass over the activation after the matrix
/// product is the swish. On an autodiff device: Burn's ops, unfolded.
///
/// # Shapes
/// `x`: `[batch, in, h, w]`, `weight`: `[out, in, 1, 1]`, `gate`: `[batch, in, 1, 1]` ->
/// `[batch, out, h, w]`
pub fn pointwise_norm_act(
    x: Tensor<4>,
    weight: Tensor<4>,
    gate: Option<Tensor<4>>,
    bn: &BatchNorm,
    activate: bool,
) -> Tensor<4> {
    let device = x.device();
    let [batch, channels, _, _] = x.dims();
    if device.is_autodiff() {
        let x = match gate {
            Some(gate) => x * gate,
            None => x,
        };
        return norm_act(
            bn,
            crate::conv::conv2d_same(x, weight, None, 1, 1),
            activate,
        );
    }
    let [out_channels, _, _, _] = weight.dims();
    let (scale, shift) = batch_norm_affine(bn);
    let scale: Tensor<4> =
        Tensor::from_data(TensorData::new(scale, [out_channels, 1, 1, 1]), &device);
    let shift: Tensor<1> = Tensor::from_data(TensorData::new(shift, [out_channels]), &device);
    let mut weight = weight * scale;
    let x = match gate {
        Some(gate) if batch == 1 => {
            weight = weight * gate.reshape([1, channels, 1, 1]);
            x
        }
        Some(gate) => x * gate,
        None => x,
    };
    let y = crate::conv::conv2d_same(x, weight, Some(shift), 1, 1);
    if activate { swish(y) } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch norm as the model's layers build it (EfficientDet's epsilon and momentum).
    fn batch_norm(channels: usize, device: &burn::tensor::Device) -> BatchNorm {
        burn::nn::BatchNormConfig::new(channels)
            .with_epsilon(1e-3)
            .with_momentum(0.01)
            .init(device)
    }

    #[test]
    fn should_match_std_exp_to_float_precision() {
        // Over the whole clamped range, against exp in f64: the exponent trick must hold at
        // both ends (k = -126 and 127).
        let mut worst: f64 = 0.0;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let exact = f64::from(x).exp();
            worst = worst.max((f64::from(fast_exp(x)) - exact).abs() / exact);
            x += 0.00137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(fast_exp(1000.0), fast_exp(88.0), "clamped above");
    }

    #[test]
    fn should_not_read_what_recycled_buffers_held() {
        // The output and the padded planes come from this thread's recycled buffers: fill
        // the pool with NaNs of every size involved, then every path must give the bits of
        // a run on fresh buffers.
        let channels = 16;
        let values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 29 % 97) as f32 - 48.0) / 24.0)
                .collect()
        };
        for (size, kernel, stride) in [(12, 7, 1), (12, 3, 1), (12, 5, 2), (20, 5, 1), (9, 3, 2)] {
            let input = values(channels * size * size);
            let weights = values(channels * kernel * kernel);
            let run = || {
                depthwise_planes(
                    &input,
                    [channels, size, size],
                    channels,
                    &weights,
                    kernel,
                    stride,
                    None,
                    false,
                )
            };
            let clean = run();
            for len in [
                clean.len(),
                (size + kernel) * (size + kernel) * 8,
                4 * size * size,
            ] {
                for _ in 0..4 {
                    crate::scratch::recycle(vec![f32::NAN; len]);
                }
            }
            let dirty = run();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(
                clean.iter().all(|v| v.is_finite()),
                "{size} k{kernel} s{stride}"
            );
            assert_eq!(bits(&clean), bits(&dirty), "{size} k{kernel} s{stride}");
        }
    }

    #[test]
    fn should_give_the_same_bits_with_channels_in_lanes_as_by_planes() {
        // Widths not a multiple of 8 (the transposes' scalar tails), rows shorter and
        // longer than a block of output pixels, odd and even padding, both strides, both
        // kernels, each epilogue; two images of 16 channels (two groups each); 48 x 48 at
        // stride 1 is past PARALLEL_MIN_OUTPUTS (planes in parallel). The means taken with
        // the planes are the bits of plane_mean over the output afterwards, on every path,
        // and asking for them leaves the output as it was.
        let values = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.0) / 25.0)
                .collect()
        };
        let channels = 16;
        let (scale, shift) = (values(channels, 1), values(channels, 2));
        for [height, width] in [[7, 9], [16, 16], [13, 21], [32, 31], [5, 40], [48, 48]] {
            for (kernel, stride) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
                for (affine, activate) in [
                    (Some((&scale[..], &shift[..])), true),
                    (Some((&scale[..], &shift[..])), false),
                    (None, false),
                ] {
                    let input = values(2 * channels * height * width, height + kernel);
                    let weights = values(channels * kernel * kernel, width);
                    let filters = Filters {
                        weights: &weights,
                        kernel,
                        stride,
                        affine,
                        activate,
                    };
                    let shape = [2 * channels, height, width];
                    let run = |layout, with_means| {
                        depthwise_planes_in(&input, shape, channels, filters, layout, with_means)
                    };
                    let case =
                        format!("{height}x{width} k{kernel} s{stride} {affine:?} {activate}");
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let (planes, none) = run(Layout::Planes, false);
                    assert!(none.is_none(), "{case}");
                    assert!(planes.iter().all(|v| v.is_finite()), "{case}");
                    let plane = planes.len() / shape[0];
                    let means: Vec<f32> = planes.chunks_exact(plane).map(plane_mean).collect();
                    for layout in [Layout::Planes, Layout::Lanes, Layout::Auto] {
                        let (output, _) = run(layout, false);
                        assert_eq!(bits(&planes), bits(&output), "{layout:?}, {case}");
                        let (output, taken) = run(layout, true);
                        assert_eq!(bits(&planes), bits(&output), "{layout:?} + means, {case}");
                        let taken = taken.expect("means asked for");
                        assert_eq!(bits(&means), bits(&taken), "{layout:?} means, {case}");
                    }
                }
            }
        }
    }

    #[test]
    fn should_match_burn_depthwise_conv_with_same_padding() {
        let device = burn::tensor::Device::flex();
        // Widths 8..=40: output rows shorter than, equal to and longer than a block of
        // lanes, with and without a remainder; kernel 7 takes the generic path.
        for (size, kernel, stride) in [
            (9, 3, 1),
            (9, 5, 1),
            (10, 3, 2),
            (11, 5, 2),
            (16, 5, 2),
            (7, 3, 2),
            (15, 3, 1),
            (33, 3, 2),
            (31, 5, 2),
            (39, 5, 1),
            (12, 7, 1),
        ] {
            let channels = 4;
            let mut bn = batch_norm(channels, &device);
            bn.running_var =
                burn::module::RunningState::new(Tensor::from_floats([0.5, 1.5, 2.0, 1.0], &device));
            let x = Tensor::<4>::random(
                [2, channels, size, size + 1],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let weight = Tensor::<4>::random(
                [channels, 1, kernel, kernel],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let expected = burn::tensor::activation::silu(bn.forward(crate::conv::conv2d_same(
                x.clone(),
                weight.clone(),
                None,
                stride,
                channels,
            )));
            let plain = crate::conv::conv2d_same(x.clone(), weight.clone(), None, stride, channels);
            let ours_plain = depthwise_same(x.clone(), weight.clone(), stride);
            let error: f32 = (ours_plain - plain).abs().max().into_scalar();
            assert!(
                error < 1e-4,
                "no norm: size {size} kernel {kernel} stride {stride}: {error}"
            );
            let ours = depthwise_norm_act(x, weight, stride, &bn, true);
            assert_eq!(ours.dims(), expected.dims());
            let error: f32 = (ours - expected).abs().max().into_scalar();
            assert!(
                error < 1e-4,
                "size {size} kernel {kernel} stride {stride}: {error}"
            );
        }
    }

    #[test]
    fn should_compute_the_stem_like_burn() {
        let device = burn::tensor::Device::flex();
        // Panels of output pixels across output rows (8 x 8, 8 x 17, 20 x 5) and inside them
        // (32 x 35: two whole panels a row, the third across its end).
        for (height, width) in [(16, 16), (15, 33), (40, 9), (64, 70)] {
            let x = Tensor::<4>::random(
                [1, 3, height, width],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let weight = Tensor::<4>::random(
                [5, 3, 3, 3],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let bias = vec![0.1, -0.2, 0.3, 0.0, 0.5];
            let expected = burn::tensor::activation::silu(
                crate::conv::conv2d_same(x.clone(), weight.clone(), None, 2, 1)
                    + Tensor::<1>::from_floats(bias.as_slice(), &device).reshape([1, 5, 1, 1]),
            );
            let input: Vec<f32> = x.into_data().iter::<f32>().collect();
            let weights: Vec<f32> = weight.into_data().iter::<f32>().collect();
            let ours = stem_conv3x3_s2(&input, [height, width], &weights, &bias, true);
            let expected: Vec<f32> = expected.into_data().iter::<f32>().collect();
            assert_eq!(ours.len(), expected.len());
            let error = ours
                .iter()
                .zip(&expected)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(error < 1e-4, "{height}x{width}: {error}");
        }
    }

    #[test]
    fn should_max_pool_like_burn_with_same_padding() {
        let device = burn::tensor::Device::flex();
        // Odd and even sizes (padding on one side or both), stride 1 and 2; all-negative
        // values, so that a padding value winning would show.
        for (size, kernel, stride) in [
            (4, 3, 2),
            (5, 3, 2),
            (8, 3, 2),
            (9, 3, 2),
            (7, 3, 1),
            (6, 2, 2),
        ] {
            let x = Tensor::<4>::random(
                [2, 3, size, size + 1],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            )
            .abs()
            .neg()
                - 1.0;
            let expected = crate::conv::max_pool_same_burn(x.clone(), kernel, stride);
            let ours = max_pool_same(x, kernel, stride);
            assert_eq!(ours.dims(), expected.dims());
            let error: f32 = (ours - expected).abs().max().into_scalar();
            assert_eq!(error, 0.0, "size {size} kernel {kernel} stride {stride}");
        }
    }

    #[test]
    fn should_match_burn_dense_conv_as_im2col() {
        let device = burn::tensor::Device::flex();
        for (size, stride) in [(16, 2), (15, 2), (9, 1)] {
            let x = Tensor::<4>::random(
                [2, 3, size, size + 2],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let weight = Tensor::<4>::random(
                [8, 3, 3, 3],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let expected = crate::conv::conv2d_same(x.clone(), weight.clone(), None, stride, 1);
            let ours = conv_im2col(x, weight, stride);
            assert_eq!(ours.dims(), expected.dims());
            let error: f32 = (ours - expected).abs().max().into_scalar();
            assert!(error < 1e-4, "size {size} stride {stride}: {error}");
        }
    }

    #[test]
    fn should_fuse_norm_and_swish_like_burn() {
        let device = burn::tensor::Device::flex();
        let mut bn = batch_norm(3, &device);
        bn.running_mean =
            burn::module::RunningState::new(Tensor::from_floats([0.1, -0.2, 0.3], &device));
        bn.running_var =
            burn::module::RunningState::new(Tensor::from_floats([0.5, 1.5, 2.0], &device));
        bn.gamma = burn::module::Param::from_tensor(Tensor::from_floats([1.2, 0.8, -0.5], &device));
        let x = Tensor::<4>::random(
            [2, 3, 5, 7],
            burn::tensor::Distribution::Normal(0.0, 3.0),
            &device,
        );
        let expected = burn::tensor::activation::silu(bn.forward(x.clone()));
        let ours = norm_act(&bn, x.clone(), true);
        let error: f32 = (ours - expected).abs().max().into_scalar();
        assert!(error < 1e-5, "{error}");
        let plain: f32 = (norm_act(&bn, x.clone(), false) - bn.forward(x))
            .abs()
            .max()
            .into_scalar();
        assert!(plain < 1e-5, "{plain}");
    }
}
