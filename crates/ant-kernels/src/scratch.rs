//! Output buffers recycled between the inference kernels of one thread.
//!
//! A kernel that writes every element of its output ([`crate::matmul::pointwise`],
//! [`crate::fast::depthwise_planes`]) has no use for a zeroed buffer, yet `vec![0.0; n]`
//! zeroes it: on D0 at 512 px that memset was 7% of a frame, a whole extra pass over maps of
//! up to 25 MB. [`take`] hands such a kernel a buffer a caller gave back with [`recycle`]
//! (its old values still in it), or a fresh zeroed one when none is large enough; the CPU
//! engine's maps (`ant_supernet::prepared::Map`) give their buffers back when dropped. Each
//! thread keeps its own few buffers, so nothing is shared or locked, and nothing is unsafe:
//! a stale value is only ever overwritten.

use std::cell::RefCell;

/// Buffers kept per thread, and their bytes at most: beyond either, the smallest goes first
/// (a frame's largest maps are the ones worth not zeroing). D0 at 512 px cycles through
/// about fifteen map sizes from 0.4 to 24 MiB: with 8 buffers and 64 MiB, and any buffer
/// serving any smaller request, they kept being shortened by small maps and zeroed back to
/// length (memset 3-5% of a frame); with these bounds and the twice-the-size rule of
/// [`take`] a frame reuses them (D0 1 thread 109-111 -> 102-107 ms, 2 threads 72-73 -> 66-67
/// ms; peak RSS of `profile_frame` 169 -> 202 MB).
const KEPT: usize = 32;
const KEPT_BYTES: usize = 128 << 20;

thread_local! {
    /// This thread's kept buffers, by increasing capacity.
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values **with unspecified contents** (old values of a recycled buffer,
/// or zeros): for a kernel that writes every element. The shortest kept buffer at least
/// `len` long, else the smallest with room for `len` values (its grown part zeroed), else a
/// new one.
pub fn take(len: usize) -> Vec<f32> {
    let kept = FREE.with_borrow_mut(|free| {
        // Growing a buffer's length zeroes the grown part: first the shortest buffer that is
        // already long enough, else the smallest one with the room; never one more than
        // twice as large (a small map would shorten a large map's buffer for good).
        let suits = |buffer: &Vec<f32>| buffer.capacity() <= 2 * len.max(1 << 10);
        let long = (free.iter().enumerate())
            .filter(|(_, buffer)| buffer.len() >= len && suits(buffer))
            .min_by_key(|(_, buffer)| buffer.len())
            .map(|(index, _)| index);
        let roomy = || {
            let fits = free.partition_point(|buffer| buffer.capacity() < len);
            (fits < free.len() && suits(&free[fits])).then_some(fits)
        };
        long.or_else(roomy).map(|index| free.remove(index))
    });
    match kept {
        Some(mut buffer) => {
            // Within the capacity: no allocation, and only a grown tail is zeroed.
            buffer.resize(len, 0.0);
            buffer
        }
        None => vec![0.0; len],
    }
}

/// Gives a buffer back for [`take`] on this thread (beyond `KEPT` buffers or
/// `KEPT_BYTES`, the smallest are dropped).
pub fn recycle(buffer: Vec<f32>) {
    let bytes = |buffer: &Vec<f32>| buffer.capacity() * size_of::<f32>();
    if buffer.capacity() == 0 || bytes(&buffer) > KEPT_BYTES {
        return;
    }
    FREE.with_borrow_mut(|free| {
        let at = free.partition_point(|kept| kept.capacity() < buffer.capacity());
        free.insert(at, buffer);
        while free.len() > KEPT || free.iter().map(bytes).sum::<usize>() > KEPT_BYTES {
            free.remove(0);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_hand_back_the_smallest_recycled_buffer_that_fits() {
        recycle(vec![1.0; 100]);
        recycle(vec![2.0; 10]);
        recycle(vec![3.0; 50]);
        let taken = take(40);
        assert_eq!(taken.len(), 40);
        assert_eq!(taken.capacity(), 50, "the 50-value buffer, not the 100");
        assert!(taken.iter().all(|v| *v == 3.0), "old values, unzeroed");
        let grown = take(12);
        assert_eq!(grown.len(), 12);
        assert!(grown.capacity() >= 100, "the 10-value buffer is too small");
        assert_eq!(grown[..10], [1.0; 10]);
        let fresh = take(1000);
        assert_eq!(
            fresh,
            vec![0.0; 1000],
            "nothing large enough: a new zeroed buffer"
        );
        assert_eq!(take(10), vec![2.0; 10]);
    }

    #[test]
    fn should_not_shorten_a_large_buffer_for_a_small_request() {
        FREE.with_borrow_mut(Vec::clear);
        recycle(vec![5.0; 1 << 20]);
        assert_eq!(
            take(1 << 12),
            vec![0.0; 1 << 12],
            "a new buffer, not the large one"
        );
        let large = take(1 << 20);
        assert_eq!(large.len(), 1 << 20);
        assert!(
            large.iter().all(|v| *v == 5.0),
            "the large buffer, at its length"
        );
        recycle(vec![6.0; 3000]);
        let longer = take(1600);
        assert_eq!(longer[0], 6.0, "within twice the request");
    }

    #[test]
    fn should_keep_a_bounded_number_of_buffers() {
        // Sizes 8, 9, ...: the three smallest are dropped.
        for index in 0..KEPT + 3 {
            recycle(vec![index as f32; 8 + index]);
        }
        let kept: Vec<Vec<f32>> = (0..KEPT).map(|_| take(8)).collect();
        assert!(
            kept.iter().all(|buffer| buffer[0] >= 3.0),
            "the three smallest dropped"
        );
        assert_eq!(take(8), vec![0.0; 8], "no more kept buffers");
        // A buffer over the byte bound is not kept; under it, the small ones make room.
        recycle(vec![1.0; 4]);
        recycle(vec![2.0; KEPT_BYTES / 4 + 1]);
        assert_eq!(take(4), vec![1.0; 4]);
        recycle(vec![1.0; 4]);
        recycle(vec![3.0; KEPT_BYTES / 4]);
        assert_eq!(
            take(4),
            vec![0.0; 4],
            "the small buffer made room for the large one"
        );
        assert_eq!(take(KEPT_BYTES / 4)[0], 3.0);
    }

    /// The kernels that take their output from here write every element: run on recycled
    /// buffers full of NaN, they give the same bits as on fresh ones.
    #[test]
    fn should_leave_no_stale_value_in_a_kernel_output() {
        use crate::fast::depthwise_planes;
        use crate::matmul::{PointwiseEpilogue, pointwise};
        let values = |count: usize| -> Vec<f32> {
            (0..count)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect()
        };
        let poison = || {
            for _ in 0..KEPT {
                recycle(vec![f32::NAN; 1 << 16]);
            }
        };
        for (out, inputs, pixels) in [(7, 5, 33), (13, 24, 1000), (96, 16, 4096)] {
            let (weight, input, bias) =
                (values(out * inputs), values(inputs * pixels), values(out));
            let epilogue = PointwiseEpilogue {
                bias: &bias,
                addend: None,
                swish: true,
                residual: None,
            };
            FREE.with_borrow_mut(Vec::clear);
            let fresh = pointwise(&weight, [out, inputs, pixels], &input, epilogue);
            poison();
            let reused = pointwise(&weight, [out, inputs, pixels], &input, epilogue);
            assert_eq!(fresh, reused, "pointwise {out}x{inputs}x{pixels}");
        }
        for (channels, height, width, kernel, stride) in [
            (3, 9, 11, 3, 1),
            (4, 9, 11, 3, 2),
            (2, 16, 16, 5, 2),
            (5, 7, 6, 5, 1),
            (24, 40, 40, 3, 2),
        ] {
            let input = values(channels * height * width);
            let weights = values(channels * kernel * kernel);
            let (scale, shift) = (values(channels), values(channels));
            let run = || {
                depthwise_planes(
                    &input,
                    [channels, height, width],
                    channels,
                    &weights,
                    kernel,
                    stride,
                    Some((&scale, &shift)),
                    true,
                )
            };
            FREE.with_borrow_mut(Vec::clear);
            let fresh = run();
            poison();
            let reused = run();
            assert!(fresh.iter().all(|v| v.is_finite()));
            assert_eq!(
                fresh, reused,
                "depthwise {channels}x{height}x{width} k{kernel} s{stride}"
            );
        }
    }
}
