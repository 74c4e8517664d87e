//! Data-parallel training steps: a batch split into shards, one replica of the model per
//! shard, each replica's forward and backward on its own thread.
//!
//! Burn's `flex` backend runs a training step on about one core of two (its kernels barely
//! scale with threads at small batches), so on a laptop-class CPU the second core idles. A
//! replica is the model's validation snapshot put back into training (`valid().train()`):
//! same parameters and parameter ids, its own autodiff graph (Burn serialises the backward
//! passes of graphs that share nodes) and its own batch-norm running-state cells. After the
//! shards' backward passes, the gradients are summed in shard order and each norm's running
//! statistics are set to the shard average, so the result does not depend on which thread
//! finishes first. Batch statistics are per shard, as in PyTorch's `DistributedDataParallel`
//! without `SyncBatchNorm`; the loss of shard `i` is weighted by its share of the batch, so
//! the summed gradient is that of the batch mean.
//!
//! Replica `i` runs on `devices[i % devices.len()]`: the master's own device for the CPU's
//! cores, one GPU each (`cargo xtask train --device wgpu --gpus N`), or a device another
//! machine serves (`cargo xtask train --replica-device ws://...`, a Burn remote device). A
//! replica off the master's device gets the parameters moved to it every step and its
//! gradients and statistics moved back before they are summed, which is Burn's multi-device
//! pattern (fork per device, merge gradients, one optimizer step).

use burn::module::{Module, ModuleMapper, Param, RunningState};
use burn::nn::BatchNorm;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Result, TrainError};

/// Visits every batch norm of a model, in a fixed order.
pub type NormVisitor<M> = fn(&mut M, &mut dyn FnMut(&mut BatchNorm));

/// Splits `0..len` into `parts` contiguous ranges whose lengths differ by at most one (the
/// first ones are longer).
pub fn shard_ranges(len: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, len.max(1));
    let (base, extra) = (len / parts, len % parts);
    let mut start = 0;
    (0..parts)
        .map(|index| {
            let size = base + usize::from(index < extra);
            let range = start..start + size;
            start += size;
            range
        })
        .collect()
}

/// The running statistics of every norm of a model, after flushing this thread's pending
/// update (Burn's running state publishes a thread's last update lazily). They stay on the
/// device: reading hundreds of small tensors back every step would stall a GPU.
fn running_statistics<M>(model: &mut M, norms: NormVisitor<M>) -> Vec<(Tensor<1>, Tensor<1>)> {
    let mut statistics = Vec::new();
    norms(model, &mut |norm| {
        statistics.push((
            norm.running_mean.value_sync().detach(),
            norm.running_var.value_sync().detach(),
        ));
    });
    statistics
}

/// Replaces the value of a running state (keeping its id) through Burn's module mapping.
struct Replace(Option<Tensor<1>>);

impl ModuleMapper for Replace {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, _) = param.consume();
        let value = self.0.take().expect("a running state holds one tensor");
        let value: Tensor<D> = value.to_device(&tensor.device()).reshape(tensor.dims());
        Param::initialized(id, value)
    }
}

/// Sets a running state to the mean of `values` (in order; on the state's device: the
/// replicas' workers already moved them to the master's, so this moves nothing).
fn set_running(state: &mut RunningState<Tensor<1>>, values: &[Tensor<1>]) {
    let device = state.value().device();
    let mut sum = values[0].clone().to_device(&device);
    for value in &values[1..] {
        sum = sum + value.clone().to_device(&device);
    }
    let mut replace = Replace(Some(sum.div_scalar(values.len() as f32)));
    *state = state.clone().map(&mut replace);
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// One data-parallel step: `run(index, replica, shard, device)` computes shard `index`'s loss
/// on its replica (whose autodiff device is `device`: put the shard's tensors there), runs the
/// backward pass and returns the replica's gradients with whatever numbers the caller wants
/// back. Replica `i` lives on `devices[i % devices.len()]` (plain devices; `master` is the
/// model's). Replicas on `master` run as tasks of Rayon's global pool, replicas on other
/// devices on threads of their own. Returns the summed gradients (on `master`) and the
/// per-shard numbers (in shard order); `model`'s batch-norm running statistics become the
/// average of the replicas'.
///
/// Everything that touches a replica's device (moving the model there, the forward and
/// backward, moving gradients and statistics back to `master`) runs inside that replica's
/// panic guard, so a device lost mid-step (a remote server gone, which Burn's client reports
/// by panicking) fails the step with an error naming it, not the process.
///
/// # Errors
/// The first shard's error (in shard order); a panicking replica becomes
/// [`TrainError::Worker`].
pub fn data_parallel_step<M, S, T, F>(
    model: &mut M,
    norms: NormVisitor<M>,
    shards: Vec<S>,
    master: &Device,
    devices: &[Device],
    run: F,
) -> Result<(GradientsParams, Vec<T>)>
where
    M: Module,
    S: Send,
    T: Send,
    F: Fn(usize, &mut M, S, &Device) -> Result<(GradientsParams, T)> + Sync,
{
    let placement: Vec<Device> = (0..shards.len())
        .map(|index| match devices {
            [] => master.clone(),
            devices => devices[index % devices.len()].clone(),
        })
        .collect();
    let work = |index: usize, snapshot: M, shard: S| {
        let plain = &placement[index];
        let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut replica = if plain == master {
                snapshot.train()
            } else {
                snapshot.to_device(plain).train()
            };
            let (grads, value) = run(index, &mut replica, shard, &plain.clone().autodiff())?;
            let mut statistics = running_statistics(&mut replica, norms);
            if plain != master {
                let grads = grads.to_device(master, &replica);
                for (mean, var) in &mut statistics {
                    *mean = mean.clone().to_device(master);
                    *var = var.clone().to_device(master);
                }
                return Ok((grads, value, statistics));
            }
            Ok::<_, TrainError>((grads, value, statistics))
        }));
        guarded.unwrap_or_else(|panic| {
            Err(TrainError::Worker {
                replica: index,
                device: format!("{plain:?}"),
                message: panic_message(panic.as_ref()),
            })
        })
    };
    // Validation snapshots: the replicas share the model's parameters (and ids) but get their
    // own autodiff graphs and running-state cells once put back into training.
    let snapshots: Vec<M> = placement.iter().map(|_| model.valid()).collect();
    // Replicas on the model's own device run as tasks of Rayon's pool, so that the parallel
    // loops of their kernels run on the worker that runs the replica (and spread to idle
    // workers) instead of being handed across threads and waited for: on two cores, two such
    // replicas train 1.2-1.3x faster than on two threads of their own. A replica on another
    // device (a remote server) mostly waits for it, and gets a thread of its own so that it
    // never holds a worker.
    let (local, other): (Vec<_>, Vec<_>) = snapshots
        .into_iter()
        .zip(shards)
        .enumerate()
        .partition(|(index, _)| placement[*index] == *master);
    let mut results: Vec<Option<Result<_>>> = placement.iter().map(|_| None).collect();
    std::thread::scope(|threads| {
        let handles: Vec<_> = other
            .into_iter()
            .map(|(index, (snapshot, shard))| {
                let work = &work;
                (index, threads.spawn(move || work(index, snapshot, shard)))
            })
            .collect();
        let done: Vec<_> = local
            .into_par_iter()
            .map(|(index, (snapshot, shard))| (index, work(index, snapshot, shard)))
            .collect();
        for (index, result) in done {
            results[index] = Some(result);
        }
        for (index, handle) in handles {
            // `work` catches its own panics; a join error is one that escaped it.
            results[index] = Some(handle.join().unwrap_or_else(|panic| {
                Err(TrainError::Worker {
                    replica: index,
                    device: format!("{:?}", placement[index]),
                    message: panic_message(panic.as_ref()),
                })
            }));
        }
    });
    let results = results
        .into_iter()
        .map(|result| result.expect("every replica ran"));
    let mut accumulator = GradientsAccumulator::new();
    let mut values = Vec::with_capacity(results.len());
    let mut statistics = Vec::with_capacity(results.len());
    for result in results {
        let (grads, value, stats) = result?;
        accumulator.accumulate(model, grads);
        values.push(value);
        statistics.push(stats);
    }
    let mut index = 0;
    norms(model, &mut |norm| {
        let means: Vec<Tensor<1>> = statistics.iter().map(|s| s[index].0.clone()).collect();
        let vars: Vec<Tensor<1>> = statistics.iter().map(|s| s[index].1.clone()).collect();
        set_running(&mut norm.running_mean, &means);
        set_running(&mut norm.running_var, &vars);
        index += 1;
    });
    Ok((accumulator.grads(), values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{BatchNormConfig, Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    #[test]
    fn should_split_a_batch_into_near_equal_contiguous_shards() {
        assert_eq!(shard_ranges(4, 2), vec![0..2, 2..4]);
        assert_eq!(shard_ranges(5, 2), vec![0..3, 3..5]);
        assert_eq!(shard_ranges(3, 3), vec![0..1, 1..2, 2..3]);
        assert_eq!(shard_ranges(2, 4), vec![0..1, 1..2], "never an empty shard");
        assert_eq!(shard_ranges(4, 1), vec![0..4]);
    }

    #[derive(Module, Debug)]
    struct Probe {
        linear: Linear,
        norm: BatchNorm,
    }

    fn probe_norms(model: &mut Probe, f: &mut dyn FnMut(&mut BatchNorm)) {
        f(&mut model.norm);
    }

    /// The probe with seeded weights on `device`.
    fn probe(device: &Device) -> Probe {
        device.seed(3);
        Probe {
            linear: LinearConfig::new(3, 2).init(device),
            norm: BatchNormConfig::new(3).init(device),
        }
    }

    fn loss(model: &Probe, x: Tensor<2>) -> Tensor<1> {
        // The norm only records statistics here; the loss reads the linear layer alone, so
        // sharding must not change the gradient.
        let [batch, features] = x.dims();
        let _ = model.norm.forward(x.clone().reshape([batch, features, 1]));
        model.linear.forward(x).powf_scalar(2.0).mean()
    }

    #[test]
    fn should_sum_shard_gradients_to_the_batch_gradient_and_average_statistics() {
        let device = Device::flex().autodiff();
        let mut model = probe(&device);
        let rows: Vec<f32> = (0..12).map(|v| v as f32 * 0.5 - 2.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(rows, [4, 3]), &device);
        // The reference runs on a copy with its own running-state cells (same parameter ids).
        let reference = model.valid().train();
        let whole = GradientsParams::from_grads(loss(&reference, x.clone()).backward(), &reference);
        let shards: Vec<Tensor<2>> = shard_ranges(4, 2)
            .into_iter()
            .map(|range| x.clone().slice(range))
            .collect();
        let plain = Device::flex();
        // Two replicas placed on "two devices" (the same CPU twice: the multi-device path).
        let devices = [plain.clone(), plain.clone()];
        let (grads, values) = data_parallel_step(
            &mut model,
            probe_norms,
            shards,
            &plain,
            &devices,
            |_, replica, x, device| {
                let x = x.to_device(device);
                let loss = loss(replica, x).mul_scalar(0.5);
                let value: f32 = loss.clone().into_scalar();
                Ok((GradientsParams::from_grads(loss.backward(), replica), value))
            },
        )
        .unwrap();
        assert_eq!(values.len(), 2);
        let id = model.linear.weight.id;
        let expected: Vec<f32> = whole.get::<2>(id).unwrap().into_data().iter().collect();
        let summed: Vec<f32> = grads.get::<2>(id).unwrap().into_data().iter().collect();
        for (a, b) in expected.iter().zip(&summed) {
            assert!((a - b).abs() < 1e-5, "{expected:?} vs {summed:?}");
        }
        // Running mean: momentum 0.1 from 0 toward each shard's batch mean, then averaged.
        // The two shards' means of column c average to the column's batch mean.
        let mean: Vec<f32> = model.norm.running_mean.value().into_data().iter().collect();
        for (c, value) in mean.iter().enumerate() {
            let batch_mean = (0..4).map(|r| (r * 3 + c) as f32 * 0.5 - 2.0).sum::<f32>() / 4.0;
            assert!((value - 0.1 * batch_mean).abs() < 1e-6, "{mean:?}");
        }
    }

    #[test]
    fn should_turn_a_panicking_replica_into_an_error_naming_it() {
        let device = Device::flex().autodiff();
        let mut model = probe(&device);
        let plain = Device::flex();
        for failing in [0, 1] {
            let shards = vec![0usize, 1];
            let result = data_parallel_step(
                &mut model,
                probe_norms,
                shards,
                &plain,
                &[],
                |index, replica, _, device| {
                    if index == failing {
                        panic!("server gone");
                    }
                    let x = Tensor::<2>::ones([2, 3], device);
                    let loss = loss(replica, x);
                    Ok((GradientsParams::from_grads(loss.backward(), replica), ()))
                },
            );
            match result {
                Err(TrainError::Worker {
                    replica,
                    device,
                    message,
                }) => {
                    assert_eq!(replica, failing);
                    assert_eq!(device, format!("{plain:?}"));
                    assert_eq!(message, "server gone");
                }
                other => panic!("expected a worker error, got {:?}", other.map(|_| ())),
            }
        }
    }
}
