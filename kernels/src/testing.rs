//! Test hooks, compiled only with the `testing` feature (kernels' own integration tests and
//! other crates' tests enable it through their dev-dependency): never part of a production
//! build.
//!
//! Here: [`InjectedFault`], [`test_context`] and [`run_test_kernel`]. The hooks that need a
//! backend's private state are methods behind the same feature, next to that state:
//! `sigverify::gpu::GpuEd25519::{inject_fault, set_sub_batch_items}`,
//! `sigverify::Verifier::gpu_on` and `gpu::GpuBlock::{ed25519, merkle}`.

use std::sync::Arc;

use crate::gpu::shader::Shader;
use crate::gpu::{gpu_required, GpuContext, GpuError, REQUIRE_GPU_ENV};
use crate::sigverify::gpu::{words_to_bytes, WORKGROUP_ITEMS};

/// A fault `GpuEd25519` injects into its next verify call (`inject_fault`), for tests of the
/// CPU fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedFault {
    /// Reading back sub-batch `sub_batch` (0-based, within one call) reports a mapping
    /// failure, as a real `map_async` error would.
    MapFailure { sub_batch: usize },
    /// The device is destroyed (lost for real) before sub-batch `sub_batch` is submitted.
    DeviceLoss { sub_batch: usize },
}

/// The shared context, or `None` with a notice on stderr when no adapter exists.
///
/// Panics when no adapter exists and [`gpu_required`] is true (CI sets `TALLY_REQUIRE_GPU=1`
/// so that a missing driver fails the build instead of silently skipping GPU tests).
pub fn test_context() -> Option<Arc<GpuContext>> {
    match GpuContext::shared() {
        Ok(context) => Some(context),
        Err(error) if gpu_required() => {
            panic!("{REQUIRE_GPU_ENV}=1 but no GPU context could be created: {error}")
        }
        Err(error) => {
            eprintln!("notice: GPU test skipped, no GPU context: {error}");
            None
        }
    }
}

/// Runs a test kernel ([`Shader::Ed25519FieldTest`], [`Shader::Ed25519PointTest`]) as the
/// loader builds it, one thread per case: `cases` words in (binding 0), `result_words` words
/// out (binding 1).
///
/// Errors: any device error.
pub fn run_test_kernel(
    context: &GpuContext,
    shader: Shader,
    cases: &[u32],
    case_count: usize,
    result_words: usize,
) -> Result<Vec<u32>, GpuError> {
    let device = &context.device;
    let entry = shader.entry_point();
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module: &shader.module(device),
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    let input = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("cases"),
        size: (cases.len() * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    context
        .queue
        .write_buffer(&input, 0, &words_to_bytes(cases));
    let output_bytes = (result_words * 4) as u64;
    let output = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("results"),
        size: output_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("results_readback"),
        size: output_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(entry),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: input.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: output.as_entire_binding(),
            },
        ],
    });
    let mut encoder =
        device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(entry) });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(case_count.div_ceil(WORKGROUP_ITEMS) as u32, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, output_bytes);
    context.queue.submit([encoder.finish()]);
    let bytes = context.read_buffer(&readback, output_bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
