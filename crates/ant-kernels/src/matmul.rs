//! The matrix product of the CPU engine's 1x1 convolutions, with the convolution's epilogue
//! fused in: `out[o, p] = act(sum_i w[o, i] x[i, p] + bias[o]) + residual[o, p]`.
//!
//! Going through Burn's matmul cost a copy of every product (Burn's byte buffers realign
//! the output and hand it back as a fresh vector), a separate pass for bias, activation and
//! residual, and the dispatch of a tensor op per convolution, on layers whose products take
//! tens of microseconds. This kernel computes blocks of output channels x pixels in
//! registers (4 x 32 on AVX-512: 8 vectors; 6 x 16 on AVX2: 12 vectors; chosen at run time
//! by `pulp`), reading each block's weights from one contiguous run ([`PackedWeights`], packed
//! once by a caller that keeps them, per call by [`pointwise`] and [`product`]) and its pixels
//! from panels of the input packed per strip, accumulating with fused multiply-adds in
//! input-channel order, and writes each block once, finished. Threads take ranges of pixels.
//! Every output is the same sequence of fused multiply-adds on every instruction set (the
//! baseline's `mul_add` is the correctly rounded libm one), so results do not depend on the
//! CPU.

use crate::fast::fast_exp;

/// Output channels per register block (AVX-512 and the baseline).
const ROWS: usize = 4;
/// Output channels per register block on AVX2.
const NARROW_ROWS: usize = 6;
/// Pixels per vector.
const LANES: usize = 16;

/// What a 1x1 convolution does after its product.
#[derive(Clone, Copy, Debug)]
pub struct PointwiseEpilogue<'a> {
    /// One bias per output channel.
    pub bias: &'a [f32],
    /// Added before the activation (`[out, pixels]`): the other half of a convolution over
    /// two concatenated inputs.
    pub addend: Option<&'a [f32]>,
    /// Apply swish after the bias (and addend).
    pub swish: bool,
    /// Added last (`[out, pixels]`), the residual connection of a block.
    pub residual: Option<&'a [f32]>,
}

#[inline(always)]
fn finish(value: f32, bias: f32, addend: f32, swish: bool, residual: f32) -> f32 {
    let y = value + bias + addend;
    let y = if swish { y / (1.0 + fast_exp(-y)) } else { y };
    y + residual
}

/// The right-hand side of a [`product`], `[inputs, pixels]`.
#[derive(Clone, Copy, Debug)]
pub enum Columns<'a> {
    /// Stored row-major: a 1x1 convolution's input.
    Rows(&'a [f32]),
    /// Stored row-major, row `i` scaled by `gate[i]` while packing: a 1x1 convolution after
    /// a squeeze-excite gate (`W (x * g)`), with no pass over either the input or the
    /// weights for the gate.
    Gated {
        /// `[inputs, pixels]`, row-major.
        input: &'a [f32],
        /// One factor per input row.
        gate: &'a [f32],
    },
    /// Gathered while packing, an im2col without the matrix: row `i` at output pixel `p`
    /// (output row `p / out_w`, column `p % out_w`) is
    /// `source[(p / out_w) * row_step + offsets[i] + p % out_w]`. A dense convolution's taps
    /// (the stem's), each a run of `out_w` values per output row.
    Taps {
        /// The values the taps read (for the stem: the padded, column-split image planes).
        source: &'a [f32],
        /// From one output row's runs to the next's.
        row_step: usize,
        /// Output pixels per output row.
        out_w: usize,
        /// Where each tap's run starts for output row 0, one per input row.
        offsets: &'a [usize],
    },
}

/// `weight` `[out, inputs]` times `input` `[inputs, pixels]` (both row-major), then the
/// epilogue; returns `[out, pixels]`. Ranges of pixels run in parallel (rayon) when the product
/// is large.
///
/// # Panics
/// When the slices do not have the stated shapes.
pub fn pointwise(
    weight: &[f32],
    [out, inputs, pixels]: [usize; 3],
    input: &[f32],
    epilogue: PointwiseEpilogue,
) -> Vec<f32> {
    product(
        weight,
        [out, inputs, pixels],
        Columns::Rows(input),
        epilogue,
    )
}

/// `weight` `[out, inputs]` times `columns` `[inputs, pixels]`, then the epilogue; returns
/// `[out, pixels]`: [`pointwise`] for any [`Columns`].
///
/// # Panics
/// When the slices do not have the stated shapes, or a tap reads past its source.
pub fn product(
    weight: &[f32],
    [out, inputs, pixels]: [usize; 3],
    columns: Columns,
    epilogue: PointwiseEpilogue,
) -> Vec<f32> {
    let weights = PackedWeights::new(weight, [out, inputs]);
    product_packed(&weights, pixels, columns, epilogue)
}

/// A product's weights regrouped once for its register blocks (on this CPU's instruction
/// set): a layer run every frame packs them once instead of on every call (D0's 1x1
/// weights are 14 MB).
#[derive(Clone, Debug)]
pub struct PackedWeights {
    packed: Vec<f32>,
    out: usize,
    inputs: usize,
    /// The rows per register block they were packed for ([`block_rows`]).
    block_rows: usize,
}

impl PackedWeights {
    /// From `weight` `[out, inputs]`, row-major.
    ///
    /// # Panics
    /// When `weight` is not `out * inputs` values.
    pub fn new(weight: &[f32], [out, inputs]: [usize; 2]) -> Self {
        assert_eq!(weight.len(), out * inputs, "pointwise weight shape");
        let block_rows = block_rows();
        Self {
            packed: pack(weight, [out, inputs], block_rows),
            out,
            inputs,
            block_rows,
        }
    }
}

/// [`product`] with weights packed beforehand.
///
/// # Panics
/// As [`product`].
pub fn product_packed(
    weights: &PackedWeights,
    pixels: usize,
    columns: Columns,
    epilogue: PointwiseEpilogue,
) -> Vec<f32> {
    let PackedWeights {
        packed,
        out,
        inputs,
        block_rows,
    } = weights;
    let (out, inputs, block_rows) = (*out, *inputs, *block_rows);
    match columns {
        Columns::Rows(input) => {
            assert_eq!(input.len(), inputs * pixels, "pointwise input shape");
        }
        Columns::Gated { input, gate } => {
            assert_eq!(input.len(), inputs * pixels, "pointwise input shape");
            assert_eq!(gate.len(), inputs, "one gate per input row");
        }
        Columns::Taps {
            source,
            row_step,
            out_w,
            offsets,
        } => {
            assert_eq!(offsets.len(), inputs, "one offset per tap");
            assert!(
                out_w > 0 && pixels.is_multiple_of(out_w),
                "whole output rows"
            );
            let last_row = (pixels / out_w).saturating_sub(1) * row_step;
            let reach = offsets.iter().map(|o| last_row + o + out_w).max();
            assert!(reach.unwrap_or(0) <= source.len(), "taps within the source");
        }
    }
    assert_eq!(epilogue.bias.len(), out, "one bias per output channel");
    for extra in [epilogue.residual, epilogue.addend].into_iter().flatten() {
        assert_eq!(extra.len(), out * pixels, "residual and addend shapes");
    }
    // Every element is written below: a recycled buffer needs no zeroing.
    let mut output = crate::scratch::take(out * pixels);
    let product = |range: std::ops::Range<usize>, rows: &mut [&mut [f32]]| {
        pulp::Arch::new().dispatch(Product {
            packed,
            inputs,
            pixels,
            columns,
            epilogue,
            range,
            block_rows,
            output: rows,
        });
    };
    let tasks = if out * pixels * inputs < (1 << 21) {
        1
    } else {
        rayon::current_num_threads().max(1)
    };
    // Threads split the pixels, not the output channels: each packs only its own columns
    // of the input (split by rows, every thread packed all of it: at 2 threads the packing
    // copies were 12% of a D0 frame, against 5% at 1 thread).
    let per_task = pixels.div_ceil(tasks).next_multiple_of(2 * LANES);
    let mut parts: Vec<Vec<&mut [f32]>> = (0..pixels.div_ceil(per_task).max(1))
        .map(|_| Vec::with_capacity(out))
        .collect();
    for row in output.chunks_exact_mut(pixels.max(1)) {
        let mut rest = row;
        for part in &mut parts {
            let (own, next) = rest.split_at_mut(per_task.min(rest.len()));
            part.push(own);
            rest = next;
        }
    }
    if parts.len() == 1 {
        product(0..pixels, &mut parts[0]);
    } else {
        use rayon::prelude::*;
        parts.par_iter_mut().enumerate().for_each(|(task, rows)| {
            let start = task * per_task;
            product(start..(start + per_task).min(pixels), rows);
        });
    }
    drop(parts);
    output
}

/// The weights regrouped by row block, input-major inside each block: block `b` (rows
/// `b * block_rows..`, the last one possibly short, `R` rows) holds `R` weights per input
/// channel, so that its product reads one contiguous run of weights.
fn pack(weight: &[f32], [out, inputs]: [usize; 2], block_rows: usize) -> Vec<f32> {
    let mut packed = Vec::with_capacity(out * inputs);
    for first in (0..out).step_by(block_rows) {
        let rows = &weight[first * inputs..(first + block_rows).min(out) * inputs];
        for i in 0..inputs {
            packed.extend(rows.chunks_exact(inputs).map(|row| row[i]));
        }
    }
    packed
}

/// Output channels per register block on the instruction set `pulp` picks here: AVX2's 16
/// registers of 8 floats hold 6 rows x 16 pixels of accumulators (12) beside the input's two
/// vectors and the broadcast weight, where 4 x 32 would take all 16 and spill; AVX-512 (32
/// registers of 16) keeps 4 x 32.
fn block_rows() -> usize {
    if crate::fast::vector_bytes() == 32 {
        NARROW_ROWS
    } else {
        ROWS
    }
}

/// Pixels per column strip for `inputs` input channels: the strip's packed panels
/// (`inputs x strip` values, [`pack_panels`]) stay in the L2 cache while every row block of
/// the output reads them, and each row block's weights stay in L1 across the strip.
fn strip_width(inputs: usize) -> usize {
    let fits = (STRIP_VALUES / inputs.max(1)) / (2 * LANES) * (2 * LANES);
    fits.clamp(2 * LANES, 32 * 2 * LANES)
}

/// The packed input values a strip holds at most (before the clamp of [`strip_width`]).
const STRIP_VALUES: usize = 32 * 1024;

/// Fills `packed` with the panels of `W` pixels from pixel `start` to `end`, each input row's
/// `W` values after the previous row's: panel `j` is `packed[j * inputs * W..]`, `[inputs, W]`
/// row-major; the last panel's values past `end` are zeros. The product then reads its input
/// in one forward run per panel instead of one cache line per input row, `pixels` apart (as
/// many hardware prefetch streams, and pages, as there are input rows).
///
/// Rows and gated rows are read input row by input row, each row's run of the strip in one
/// forward pass (panel by panel, every panel read one cache line of each of up to 1,152
/// rows); `W` is a constant, so that a full run is a fixed-size copy, a few vector moves (a
/// `copy_from_slice` of a run-time length called `memcpy` for every 64 bytes). The two took
/// the packing from 8% of a D0 frame (`perf`) to about 6%, the frame 2-3% faster.
fn pack_panels<const W: usize>(
    columns: Columns,
    [inputs, pixels]: [usize; 2],
    start: usize,
    end: usize,
    packed: &mut [f32],
) {
    // Run `j * inputs + i`: panel `j`'s values of input row `i`.
    let (runs, _) = packed.as_chunks_mut::<W>();
    let (input, gate) = match columns {
        Columns::Rows(input) => (input, None),
        Columns::Gated { input, gate } => (input, Some(gate)),
        Columns::Taps {
            source,
            row_step,
            out_w,
            offsets,
        } => {
            for (j, panel) in runs.chunks_exact_mut(inputs).enumerate() {
                let first = start + j * W;
                let count = W.min(end - first);
                let (y, x) = (first / out_w, first % out_w);
                for (values, offset) in panel.iter_mut().zip(offsets) {
                    if x + count <= out_w {
                        // The panel within one output row: one run.
                        let at = y * row_step + offset + x;
                        copy_run(values, &source[at..at + count], None);
                        continue;
                    }
                    // The panel's pixels, one run per output row they fall in.
                    let mut done = 0;
                    while done < count {
                        let pixel = first + done;
                        let (y, x) = (pixel / out_w, pixel % out_w);
                        let run = (count - done).min(out_w - x);
                        let at = y * row_step + offset + x;
                        values[done..done + run].copy_from_slice(&source[at..at + run]);
                        done += run;
                    }
                    values[count..].fill(0.0);
                }
            }
            return;
        }
    };
    for i in 0..inputs {
        let g = gate.map(|gate| gate[i]);
        let row = &input[i * pixels + start..i * pixels + end];
        for (j, run) in row.chunks(W).enumerate() {
            copy_run(&mut runs[j * inputs + i], run, g);
        }
    }
}

/// `run` (times `gate`, when given) into a panel's row, zeros after it: a fixed-size copy
/// when the run fills the row.
#[inline(always)]
fn copy_run<const W: usize>(values: &mut [f32; W], run: &[f32], gate: Option<f32>) {
    match (<&[f32; W]>::try_from(run), gate) {
        (Ok(run), None) => *values = *run,
        (Ok(run), Some(g)) => *values = run.map(|x| x * g),
        (Err(_), gate) => {
            for (value, x) in values.iter_mut().zip(run) {
                *value = gate.map_or(*x, |g| x * g);
            }
            values[run.len()..].fill(0.0);
        }
    }
}

/// Output rows `first_row..` of a product (a whole number of row blocks, the last one
/// possibly short), computed strip by strip of pixels.
struct Product<'a, 'o> {
    /// All the weights, [`pack`]ed.
    packed: &'a [f32],
    inputs: usize,
    pixels: usize,
    columns: Columns<'a>,
    epilogue: PointwiseEpilogue<'a>,
    /// The pixels this task computes.
    range: std::ops::Range<usize>,
    /// Output channels per register block ([`block_rows`]).
    block_rows: usize,
    /// Every output row's pixels `range`.
    output: &'a mut [&'o mut [f32]],
}

impl pulp::WithSimd for Product<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Product {
            packed,
            inputs,
            pixels,
            columns,
            epilogue,
            range,
            block_rows,
            output,
        } = self;
        let strip = strip_width(inputs);
        // Panels of 16 pixels on AVX2 (6 x 16 blocks), 32 on AVX-512 and the baseline.
        let width = if block_rows == NARROW_ROWS {
            LANES
        } else {
            2 * LANES
        };
        // Not from crate::scratch: truncated to a strip, a frame's large map buffer would
        // have its length zeroed back the next time it is handed out.
        let mut packed_input = PANELS.take();
        packed_input.resize(packed_input.len().max(inputs * strip), 0.0);
        let mut start = range.start;
        while start < range.end {
            let end = (start + strip).min(range.end);
            let panels = (end - start).div_ceil(width);
            let packed_strip = &mut packed_input[..panels * inputs * width];
            if width == LANES {
                pack_panels::<LANES>(columns, [inputs, pixels], start, end, packed_strip);
            } else {
                pack_panels::<{ 2 * LANES }>(columns, [inputs, pixels], start, end, packed_strip);
            }
            for (index, rows_out) in output.chunks_mut(block_rows).enumerate() {
                let block = RowBlock {
                    packed,
                    inputs,
                    pixels,
                    panels: packed_strip,
                    epilogue,
                    first_row: index * block_rows,
                    output: rows_out,
                    offset: range.start,
                    columns: start..end,
                };
                match (block_rows == NARROW_ROWS, block.output.len()) {
                    (true, 6) => rows::<6, 1>(block),
                    (true, 5) => rows::<5, 1>(block),
                    (true, 4) => rows::<4, 1>(block),
                    (true, 3) => rows::<3, 1>(block),
                    (true, 2) => rows::<2, 1>(block),
                    (true, _) => rows::<1, 1>(block),
                    (false, 4) => rows::<4, 2>(block),
                    (false, 3) => rows::<3, 2>(block),
                    (false, 2) => rows::<2, 2>(block),
                    (false, _) => rows::<1, 2>(block),
                }
            }
            start = end;
        }
        PANELS.set(packed_input);
    }
}

thread_local! {
    /// This thread's buffer of packed panels ([`pack_panels`]), kept at its largest length.
    static PANELS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Up to [`block_rows`] output channels over a range of pixels.
struct RowBlock<'a, 'o> {
    packed: &'a [f32],
    inputs: usize,
    pixels: usize,
    /// The panels of `V * 16` pixels of `columns`, [`pack_panels`]ed.
    panels: &'a [f32],
    epilogue: PointwiseEpilogue<'a>,
    first_row: usize,
    /// The block's output rows, each from pixel `offset` on.
    output: &'a mut [&'o mut [f32]],
    offset: usize,
    columns: std::ops::Range<usize>,
}

/// `R` output channels, a packed panel of `V * 16` pixels at a time in registers; of the
/// last panel only the pixels before `columns.end` are stored.
#[inline(always)]
fn rows<const R: usize, const V: usize>(block: RowBlock<'_, '_>) {
    let RowBlock {
        packed,
        inputs,
        pixels,
        panels,
        epilogue,
        first_row,
        output,
        offset,
        columns,
    } = block;
    let (weights, _) = packed[first_row * inputs..(first_row + R) * inputs].as_chunks::<R>();
    let bias: [f32; R] = std::array::from_fn(|r| epilogue.bias[first_row + r]);
    fn rows_of<const R: usize>(values: &[f32], first_row: usize, pixels: usize) -> [&[f32]; R] {
        std::array::from_fn(|r| &values[(first_row + r) * pixels..(first_row + r + 1) * pixels])
    }
    let residual: Option<[&[f32]; R]> = epilogue
        .residual
        .map(|values| rows_of(values, first_row, pixels));
    let addend: Option<[&[f32]; R]> = epilogue
        .addend
        .map(|values| rows_of(values, first_row, pixels));
    let extras = Extras {
        residual: residual.as_ref(),
        addend: addend.as_ref(),
    };
    let outputs: &mut [&mut [f32]] = output;
    let mut column = columns.start;
    for panel in panels.chunks_exact(inputs * V * LANES) {
        let acc = accumulate_panel::<R, V>(weights, panel);
        if column + V * LANES <= columns.end {
            store(
                &acc,
                &bias,
                epilogue.swish,
                &extras,
                outputs,
                [column, offset],
            );
        } else {
            let part = column..columns.end;
            store_part(&acc, &bias, epilogue.swish, &extras, outputs, part, offset);
        }
        column += V * LANES;
    }
}

/// The `R x (V * LANES)` block of a packed panel, summed over every input channel in order.
#[inline(always)]
fn accumulate_panel<const R: usize, const V: usize>(
    weights: &[[f32; R]],
    panel: &[f32],
) -> [[[f32; LANES]; V]; R] {
    let mut acc = [[[0f32; LANES]; V]; R];
    let (vectors, _) = panel.as_chunks::<LANES>();
    for (w, x) in weights.iter().zip(vectors.chunks_exact(V)) {
        for v in 0..V {
            for r in 0..R {
                for lane in 0..LANES {
                    acc[r][v][lane] = w[r].mul_add(x[v][lane], acc[r][v][lane]);
                }
            }
        }
    }
    acc
}

/// The per-row extras of a block: the residual and the pre-activation addend.
struct Extras<'a, const R: usize> {
    residual: Option<&'a [&'a [f32]; R]>,
    addend: Option<&'a [&'a [f32]; R]>,
}

#[inline(always)]
fn store<const R: usize, const V: usize>(
    acc: &[[[f32; LANES]; V]; R],
    bias: &[f32; R],
    swish: bool,
    extras: &Extras<R>,
    outputs: &mut [&mut [f32]],
    [column, offset]: [usize; 2],
) {
    let lanes = |rows: Option<&[&[f32]; R]>, r: usize, start: usize| -> [f32; LANES] {
        rows.map_or([0.0; LANES], |rows| {
            rows[r][start..start + LANES]
                .try_into()
                .expect("a full vector of pixels")
        })
    };
    // Index loops over the const bounds, on purpose: written as
    // `acc[r].iter().enumerate()` (clippy's `needless_range_loop`) this store made the whole
    // engine 2.5x slower (tiny 256 px static frame 6.1 -> 15.7 ms, `profile_frame`): the
    // accumulators no longer stayed in registers.
    #[allow(clippy::needless_range_loop)]
    for r in 0..R {
        for v in 0..V {
            let start = column + v * LANES;
            let residual = lanes(extras.residual, r, start);
            let addend = lanes(extras.addend, r, start);
            let out: &mut [f32; LANES] = (&mut outputs[r][start - offset..start - offset + LANES])
                .try_into()
                .expect("a full vector of pixels");
            for lane in 0..LANES {
                out[lane] = finish(
                    acc[r][v][lane],
                    bias[r],
                    addend[lane],
                    swish,
                    residual[lane],
                );
            }
        }
    }
}

/// The outputs at `pixels` of a block (its rows start at pixel `offset`), fewer than its
/// `V * LANES` (the product's last,
/// partial panel). Out of line: inlined, it slowed the full panels' loop.
#[cold]
#[inline(never)]
fn store_part<const R: usize, const V: usize>(
    acc: &[[[f32; LANES]; V]; R],
    bias: &[f32; R],
    swish: bool,
    extras: &Extras<R>,
    outputs: &mut [&mut [f32]],
    pixels: std::ops::Range<usize>,
    offset: usize,
) {
    for (r, out) in outputs.iter_mut().enumerate() {
        for (lane, pixel) in pixels.clone().enumerate() {
            let residual = extras.residual.map_or(0.0, |rows| rows[r][pixel]);
            let addend = extras.addend.map_or(0.0, |rows| rows[r][pixel]);
            let value = acc[r][lane / LANES][lane % LANES];
            out[pixel - offset] = finish(value, bias[r], addend, swish, residual);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(weight: &[f32], [out, inputs, pixels]: [usize; 3], input: &[f32]) -> Vec<f32> {
        let mut y = vec![0f64; out * pixels];
        for o in 0..out {
            for i in 0..inputs {
                for p in 0..pixels {
                    y[o * pixels + p] += f64::from(weight[o * inputs + i] * input[i * pixels + p]);
                }
            }
        }
        y.into_iter().map(|v| v as f32).collect()
    }

    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (h % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Asserts `ours` is the naive product followed by `epilogue`, within 1e-4 relative.
    fn assert_near_naive(
        ours: &[f32],
        weight: &[f32],
        [out, inputs, pixels]: [usize; 3],
        input: &[f32],
        epilogue: PointwiseEpilogue,
    ) {
        let reference = naive(weight, [out, inputs, pixels], input);
        for (index, (a, r)) in ours.iter().zip(&reference).enumerate() {
            let addend = epilogue.addend.map_or(0.0, |values| values[index]);
            let residual = epilogue.residual.map_or(0.0, |values| values[index]);
            let bias = epilogue.bias[index / pixels];
            let expected = finish(*r, bias, addend, epilogue.swish, residual);
            assert!(
                (a - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                "{out}x{inputs}x{pixels} at {index}: {a} vs {expected}"
            );
        }
    }

    #[test]
    fn should_match_a_naive_product_with_every_remainder() {
        // Output channels around the 4- and 6-row blocks, pixels around the 32 and 16 blocks.
        for out in [1, 3, 4, 5, 6, 7, 9, 12, 13] {
            for pixels in [1, 15, 16, 17, 31, 32, 33, 49, 64] {
                let inputs = 7;
                let weight = values(out * inputs, 1);
                let input = values(inputs * pixels, 2);
                let bias = values(out, 3);
                let residual = values(out * pixels, 4);
                let reference = naive(&weight, [out, inputs, pixels], &input);
                let addend = values(out * pixels, 7);
                for (swish, with_residual, with_addend) in [
                    (false, false, false),
                    (true, false, false),
                    (false, true, false),
                    (true, true, true),
                ] {
                    let epilogue = PointwiseEpilogue {
                        bias: &bias,
                        addend: with_addend.then_some(addend.as_slice()),
                        swish,
                        residual: with_residual.then_some(residual.as_slice()),
                    };
                    let ours = pointwise(&weight, [out, inputs, pixels], &input, epilogue);
                    for (index, (a, r)) in ours.iter().zip(&reference).enumerate() {
                        let o = index / pixels;
                        let expected = finish(
                            *r,
                            bias[o],
                            if with_addend { addend[index] } else { 0.0 },
                            swish,
                            if with_residual { residual[index] } else { 0.0 },
                        );
                        assert!(
                            (a - expected).abs() < 1e-5,
                            "out {out} pixels {pixels}: {a} vs {expected}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn should_match_a_naive_product_across_pixel_strips() {
        // 400 input channels: strips of 64 pixels, so 100 pixels are a strip and a short one
        // of two 16-pixel panels (one of 32) and a tail of 4; 1,000 pixels end with a strip
        // of 40. 7 inputs: strips of 1,024 pixels, then 476.
        assert_eq!(strip_width(400), 4 * LANES);
        assert_eq!(strip_width(7), 64 * LANES);
        for (out, inputs, pixels) in [(5, 400, 100), (9, 400, 1000), (6, 7, 1500)] {
            let weight = values(out * inputs, 11);
            let input = values(inputs * pixels, 12);
            let bias = values(out, 13);
            let residual = values(out * pixels, 14);
            let epilogue = PointwiseEpilogue {
                bias: &bias,
                addend: None,
                swish: true,
                residual: Some(&residual),
            };
            let ours = pointwise(&weight, [out, inputs, pixels], &input, epilogue);
            assert_near_naive(&ours, &weight, [out, inputs, pixels], &input, epilogue);
        }
    }

    #[test]
    fn should_compute_the_wide_layout_of_avx512_on_any_cpu() {
        // Weights packed for 4-row blocks take the 4 x 32 path (32-pixel panels) that
        // AVX-512 and the baseline run; the code is the same Rust on every CPU, so this
        // machine's instruction set runs it too. Remainders of rows and pixels: partial
        // panels of 1, 8, 4 and 25 pixels (the last one reaching into the second vector).
        for (out, inputs, pixels) in [(9, 7, 33), (13, 24, 1000), (5, 400, 100), (6, 7, 57)] {
            let weight = values(out * inputs, 31);
            let input = values(inputs * pixels, 32);
            let bias = values(out, 33);
            let residual = values(out * pixels, 34);
            let epilogue = PointwiseEpilogue {
                bias: &bias,
                addend: None,
                swish: true,
                residual: Some(&residual),
            };
            let wide = PackedWeights {
                packed: pack(&weight, [out, inputs], ROWS),
                out,
                inputs,
                block_rows: ROWS,
            };
            let ours = product_packed(&wide, pixels, Columns::Rows(&input), epilogue);
            assert_near_naive(&ours, &weight, [out, inputs, pixels], &input, epilogue);
            let narrow = pointwise(&weight, [out, inputs, pixels], &input, epilogue);
            assert_eq!(ours, narrow, "the same multiply-adds in the same order");
        }
    }

    #[test]
    fn should_gate_the_input_rows_while_packing() {
        // Pre-packed weights and a gate applied while packing give the bits of the plain
        // product on a gated input (a partial last panel included).
        let (out, inputs, pixels) = (13, 9, 50);
        let weight = values(out * inputs, 21);
        let input = values(inputs * pixels, 22);
        let gate = values(inputs, 23);
        let bias = values(out, 24);
        let epilogue = PointwiseEpilogue {
            bias: &bias,
            addend: None,
            swish: true,
            residual: None,
        };
        let gated_input: Vec<f32> = input
            .chunks_exact(pixels)
            .zip(&gate)
            .flat_map(|(row, g)| row.iter().map(move |x| x * g))
            .collect();
        let expected = pointwise(&weight, [out, inputs, pixels], &gated_input, epilogue);
        let packed = PackedWeights::new(&weight, [out, inputs]);
        let columns = Columns::Gated {
            input: &input,
            gate: &gate,
        };
        assert_eq!(product_packed(&packed, pixels, columns, epilogue), expected);
    }

    #[test]
    fn should_split_large_products_over_threads_alike() {
        // Threads split the pixels: 1,024 into two halves; 1,000 into 512 and 488 (a
        // partial panel at the end of the second); 3 threads, 352 + 352 + 296. Residual and
        // addend are read at the task's own pixels, the output written there.
        for (out, inputs, pixels, threads) in
            [(40, 96, 1024, 2), (33, 70, 1000, 2), (33, 70, 1000, 3)]
        {
            let weight = values(out * inputs, 5);
            let input = values(inputs * pixels, 6);
            let bias = values(out, 7);
            let (residual, addend) = (values(out * pixels, 8), values(out * pixels, 9));
            let epilogue = PointwiseEpilogue {
                bias: &bias,
                addend: Some(&addend),
                swish: true,
                residual: Some(&residual),
            };
            let run = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| pointwise(&weight, [out, inputs, pixels], &input, epilogue))
            };
            let single = run(1);
            assert_near_naive(&single, &weight, [out, inputs, pixels], &input, epilogue);
            assert_eq!(
                run(threads),
                single,
                "{out}x{inputs}x{pixels}, {threads} threads"
            );
        }
    }
}
