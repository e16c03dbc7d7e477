//! GPU backend of the Merkle tree (docs/MERKLE.md): keyed BLAKE3 leaves and the level-by-level
//! reduction in WGSL compute shaders, u32 operations only.
//!
//! Shape (the CPU mirror is `super::cpu`, same levels, same order; the WGSL comes from the
//! one loader, `crate::gpu::shader`):
//! - `shaders/blake3_leaves.wgsl`: one invocation per leaf, writes level 0 into `tree`;
//! - `shaders/blake3_nodes.wgsl`: one dispatch per level, one invocation per parent.
//!
//! All levels live in one `tree` buffer, level after level, so a whole block is one command
//! buffer (when its leaves fit in one upload piece) and one 32-byte read-back. Buffers are
//! allocated once and grown (never shrunk) when a bigger block arrives.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::{empty_root, Hash, HASH_BYTES, LEAF_KEY, NODE_KEY};
use crate::gpu::shader::Shader;
use crate::gpu::{GpuContext, GpuError};

/// Largest leaf the GPU hashes: one BLAKE3 chunk.
pub const LEAF_BYTES_MAX: usize = 1024;
/// Invocations per workgroup; must match `@workgroup_size` in both shaders.
const WORKGROUP_SIZE: u32 = 64;
/// Leaf data is uploaded in pieces of at most this many bytes (also capped by the adapter's
/// storage binding limit): bounds the data buffer and keeps byte offsets inside u32.
const UPLOAD_BYTES_MAX: u64 = 256 << 20;
/// Levels above the leaves: leaf counts are below 2^29 (u32 word indices), so 30 suffice.
const LEVELS_MAX: usize = 32;
/// Bytes of the shaders' `Params` struct: key (32) + four u32.
const PARAMS_BYTES: u64 = 48;
/// Smallest buffers allocated, so that tiny first blocks do not cause many regrowths.
const BUFFER_BYTES_MIN: u64 = 64 << 10;

/// Merkle roots on the GPU. Holds its pipelines and buffers; reuse one per thread.
pub struct GpuMerkle {
    context: Arc<GpuContext>,
    layout: wgpu::BindGroupLayout,
    leaves_pipeline: wgpu::ComputePipeline,
    nodes_pipeline: wgpu::ComputePipeline,
    /// One 256-byte-aligned `Params` slot per dispatch of a submit (dynamic offsets).
    params: wgpu::Buffer,
    params_stride_bytes: u64,
    data: wgpu::Buffer,
    tree: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Staging for params slots and the read-back, reused across calls.
    params_bytes: Vec<u8>,
    readback_bytes: Vec<u8>,
    /// Leaf bytes the last call wrote to the GPU (parameters not counted).
    last_upload_bytes: u64,
}

/// Where each level of a tree of `leaf_count` leaves starts in `tree`, in nodes.
struct Levels {
    /// (offset in nodes, node count) per level, leaves first, root last.
    spans: Vec<(u64, u64)>,
    total_nodes: u64,
}

impl Levels {
    fn new(leaf_count: u64) -> Levels {
        let mut spans = vec![(0, leaf_count)];
        let mut total_nodes = leaf_count;
        let mut width = leaf_count;
        while width > 1 {
            width = width.div_ceil(2);
            spans.push((total_nodes, width));
            total_nodes += width;
        }
        Levels { spans, total_nodes }
    }
}

impl GpuMerkle {
    /// Compiles both pipelines and allocates small initial buffers.
    ///
    /// Errors: `Validation` if the device rejects a shader or pipeline (a bug, or an adapter
    /// without the needed limits), `DeviceLost`.
    pub fn new(context: Arc<GpuContext>) -> Result<GpuMerkle, GpuError> {
        context.check_health()?;
        let device = &context.device;
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: NonZeroU64::new(4),
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("merkle"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: NonZeroU64::new(PARAMS_BYTES),
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("merkle"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |shader: Shader| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(shader.label()),
                layout: Some(&pipeline_layout),
                module: &shader.module(device),
                entry_point: Some(shader.entry_point()),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let leaves_pipeline = pipeline(Shader::Blake3Leaves);
        let nodes_pipeline = pipeline(Shader::Blake3Nodes);
        let params_stride_bytes = PARAMS_BYTES.next_multiple_of(u64::from(
            context.limits.min_uniform_buffer_offset_alignment,
        ));
        let params = create_buffer(
            device,
            "merkle params",
            params_stride_bytes * (LEVELS_MAX as u64 + 1),
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let data = create_buffer(device, "merkle data", BUFFER_BYTES_MIN, data_usage());
        let tree = create_buffer(device, "merkle tree", BUFFER_BYTES_MIN, tree_usage());
        let readback = create_buffer(
            device,
            "merkle readback",
            BUFFER_BYTES_MIN,
            readback_usage(),
        );
        let bind_group = bind_group(device, &layout, &params, &data, &tree);
        let merkle = GpuMerkle {
            context,
            layout,
            leaves_pipeline,
            nodes_pipeline,
            params,
            params_stride_bytes,
            data,
            tree,
            readback,
            bind_group,
            params_bytes: Vec::new(),
            readback_bytes: Vec::new(),
            last_upload_bytes: 0,
        };
        // Shader compilation errors surface as uncaptured errors: report them here, once.
        merkle.context.wait_idle()?;
        Ok(merkle)
    }

    /// The context this backend runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.context
    }

    /// Leaf bytes the last call uploaded (0 when it uploaded none, e.g. an empty tree or
    /// leaves already staged by [`crate::gpu::GpuBlock`]); the per-dispatch parameters are not
    /// counted.
    pub fn last_upload_bytes(&self) -> u64 {
        self.last_upload_bytes
    }

    /// Root of the tree over `data.len() / leaf_bytes` leaves of `leaf_bytes` bytes each, the
    /// same value as the CPU's `merkle::root(data, leaf_bytes)`.
    ///
    /// Errors: `InvalidInput` if `leaf_bytes` is 0 or above [`LEAF_BYTES_MAX`] or `data` does
    /// not hold whole leaves; `TooLarge` if the tree does not fit the adapter's buffers;
    /// `DeviceLost`, `Validation`, `Map`, `Poll` from the device (fall back to the CPU).
    pub fn root(&mut self, data: &[u8], leaf_bytes: usize) -> Result<Hash, GpuError> {
        if leaf_bytes == 0 {
            return Err(GpuError::InvalidInput(
                "leaf_bytes is 0: leaves must have at least one byte".to_owned(),
            ));
        }
        self.last_upload_bytes = 0;
        let leaf_count = check_leaves(data, leaf_bytes, data.len() / leaf_bytes)?;
        if leaf_count == 0 {
            return Ok(empty_root());
        }
        let levels = Levels::new(leaf_count as u64);
        let root_offset = levels.spans.last().expect("at least the leaf level").0;
        self.run(
            Some(data),
            leaf_bytes,
            leaf_count,
            &LEAF_KEY,
            &levels,
            root_offset,
            1,
        )?;
        Ok(self.readback_bytes[..HASH_BYTES]
            .try_into()
            .expect("read back one hash"))
    }

    /// Leaf hashes only, with [`LEAF_KEY`]: `leaf_hash` of each leaf, in order.
    ///
    /// Errors as [`GpuMerkle::root`].
    pub fn hash_leaves(&mut self, data: &[u8], leaf_bytes: usize) -> Result<Vec<Hash>, GpuError> {
        if leaf_bytes == 0 {
            return Err(GpuError::InvalidInput(
                "leaf_bytes is 0: leaves must have at least one byte".to_owned(),
            ));
        }
        self.hash_leaves_keyed(data, leaf_bytes, data.len() / leaf_bytes, &LEAF_KEY)
    }

    /// `blake3::keyed_hash(key, leaf)` of `leaf_count` leaves of `leaf_bytes` bytes (0 allowed:
    /// then every leaf is the empty input). Exposes the WGSL compression for tests against
    /// the official BLAKE3 vectors.
    ///
    /// Errors: `InvalidInput` if `leaf_bytes > LEAF_BYTES_MAX` or
    /// `data.len() != leaf_bytes * leaf_count`; otherwise as [`GpuMerkle::root`].
    pub fn hash_leaves_keyed(
        &mut self,
        data: &[u8],
        leaf_bytes: usize,
        leaf_count: usize,
        key: &[u8; 32],
    ) -> Result<Vec<Hash>, GpuError> {
        self.last_upload_bytes = 0;
        let leaf_count = check_leaves(data, leaf_bytes, leaf_count)?;
        if leaf_count == 0 {
            return Ok(Vec::new());
        }
        let levels = Levels::new(leaf_count as u64);
        let leaves_only = Levels {
            spans: levels.spans[..1].to_vec(),
            total_nodes: leaf_count as u64,
        };
        self.run(
            Some(data),
            leaf_bytes,
            leaf_count,
            key,
            &leaves_only,
            0,
            leaf_count,
        )?;
        Ok(self
            .readback_bytes
            .chunks_exact(HASH_BYTES)
            .map(|hash| hash.try_into().expect("chunks of HASH_BYTES"))
            .collect())
    }

    /// Uploads the leaves piece by piece (`None`: they are already in the data buffer, one
    /// piece, see [`Self::stage_leaves`]), hashes them, reduces `levels` (all but the first
    /// span), and reads back `readback_nodes` nodes from node `readback_offset` into
    /// `self.readback_bytes`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        data: Option<&[u8]>,
        leaf_bytes: usize,
        leaf_count: usize,
        key: &[u8; 32],
        levels: &Levels,
        readback_offset: u64,
        readback_nodes: usize,
    ) -> Result<(), GpuError> {
        self.context.check_health()?;
        // Error scopes are per thread: errors caught here are this call's, not those of
        // another kernel sharing the device.
        let scope = self
            .context
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let submitted = self.submit(
            data,
            leaf_bytes,
            leaf_count,
            key,
            levels,
            readback_offset,
            readback_nodes,
        );
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation(error.to_string()));
        }
        let readback_bytes = submitted?;
        self.read_back(readback_bytes)
    }

    /// Waits for the submitted work and reads `readback_bytes` into `self.readback_bytes`.
    fn read_back(&mut self, readback_bytes: u64) -> Result<(), GpuError> {
        self.context
            .read_buffer_into(&self.readback, readback_bytes, &mut self.readback_bytes)?;
        assert_eq!(self.readback_bytes.len() as u64, readback_bytes);
        Ok(())
    }

    /// Leaves per upload piece for leaves of `leaf_bytes` bytes.
    fn piece_leaves_max(&self, leaf_bytes: usize, leaf_count: usize) -> usize {
        let upload_bytes_max = self.binding_bytes_max().min(UPLOAD_BYTES_MAX) & !3;
        // At least one leaf (leaf_bytes <= 1024 is far below any binding limit).
        (upload_bytes_max as usize)
            .checked_div(leaf_bytes)
            .map_or(leaf_count, |leaves| leaves.max(1))
    }

    /// Uploads `data` (whole leaves of `leaf_bytes` bytes, `leaf_bytes` a multiple of 4) into
    /// the data buffer as one piece, for other kernels to read too ([`crate::gpu::GpuBlock`]: the
    /// signature kernels read R, A, s from the same records). Returns `false`, uploading
    /// nothing, when the leaves need more than one piece (the caller then uses separate
    /// uploads). Follow with [`Self::submit_staged_root`].
    ///
    /// Errors: `InvalidInput` for a bad leaf layout (as [`Self::root`]).
    pub(crate) fn stage_leaves(
        &mut self,
        data: &[u8],
        leaf_bytes: usize,
    ) -> Result<bool, GpuError> {
        self.last_upload_bytes = 0;
        if leaf_bytes == 0 || !leaf_bytes.is_multiple_of(4) {
            return Err(GpuError::InvalidInput(format!(
                "leaf_bytes {leaf_bytes} must be a non-zero multiple of 4 for shared leaves"
            )));
        }
        let leaf_count = check_leaves(data, leaf_bytes, data.len() / leaf_bytes)?;
        if leaf_count > self.piece_leaves_max(leaf_bytes, leaf_count) {
            return Ok(false);
        }
        self.reserve(data.len() as u64, 0, 0);
        self.upload_piece(data);
        Ok(true)
    }

    /// The buffer [`Self::stage_leaves`] wrote the leaves to (valid until the next call).
    pub(crate) fn data_buffer(&self) -> &wgpu::Buffer {
        &self.data
    }

    /// Submits the tree over the `leaf_count` staged leaves (at least one) without waiting;
    /// [`Self::finish_root`] reads the root.
    ///
    /// Errors: as [`Self::root`].
    pub(crate) fn submit_staged_root(
        &mut self,
        leaf_bytes: usize,
        leaf_count: usize,
    ) -> Result<u64, GpuError> {
        assert!(leaf_count > 0, "an empty tree needs no GPU");
        self.context.check_health()?;
        let levels = Levels::new(leaf_count as u64);
        let root_offset = levels.spans.last().expect("at least the leaf level").0;
        let scope = self
            .context
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let submitted = self.submit(
            None,
            leaf_bytes,
            leaf_count,
            &LEAF_KEY,
            &levels,
            root_offset,
            1,
        );
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation(error.to_string()));
        }
        submitted
    }

    /// Waits for the work of [`Self::submit_staged_root`] and returns the root.
    ///
    /// Errors: `DeviceLost`, `Map`, `Poll`.
    pub(crate) fn finish_root(&mut self, readback_bytes: u64) -> Result<Hash, GpuError> {
        self.read_back(readback_bytes)?;
        Ok(self.readback_bytes[..HASH_BYTES]
            .try_into()
            .expect("read back one hash"))
    }

    /// Encodes and submits the work of [`Self::run`]; returns the bytes to read back.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        data: Option<&[u8]>,
        leaf_bytes: usize,
        leaf_count: usize,
        key: &[u8; 32],
        levels: &Levels,
        readback_offset: u64,
        readback_nodes: usize,
    ) -> Result<u64, GpuError> {
        assert!(
            levels.spans.len() <= LEVELS_MAX + 1,
            "leaf count is below 2^29"
        );
        let binding_bytes_max = self
            .context
            .limits
            .max_storage_buffer_binding_size
            .min(self.context.limits.max_buffer_size);
        let tree_bytes = levels.total_nodes * HASH_BYTES as u64;
        // u32 word indices in the shaders: the tree must stay below 2^32 words.
        let tree_bytes_max = binding_bytes_max.min(u64::from(u32::MAX) * 4 / 2);
        if tree_bytes > tree_bytes_max {
            return Err(GpuError::TooLarge {
                what: "the Merkle tree buffer",
                needed_bytes: tree_bytes,
                limit_bytes: tree_bytes_max,
            });
        }
        let piece_leaves_max = self.piece_leaves_max(leaf_bytes, leaf_count);
        assert!(
            data.is_some() || piece_leaves_max >= leaf_count,
            "staged leaves are one piece"
        );
        let piece_bytes_max = (piece_leaves_max.min(leaf_count) * leaf_bytes).next_multiple_of(4);
        let readback_bytes = (readback_nodes * HASH_BYTES) as u64;
        self.reserve(piece_bytes_max as u64, tree_bytes, readback_bytes);

        // Slots 1..: one per level above the leaves, written once for the final submit.
        let stride = self.params_stride_bytes as usize;
        self.params_bytes.clear();
        self.params_bytes.resize(stride * levels.spans.len(), 0);
        for (level, pair) in levels.spans.windows(2).enumerate() {
            let (in_offset, count) = pair[0];
            let (out_offset, _) = pair[1];
            let slot = &mut self.params_bytes[(level + 1) * stride..][..PARAMS_BYTES as usize];
            write_params(slot, &NODE_KEY, count, 0, in_offset, out_offset);
        }
        if levels.spans.len() > 1 {
            self.context.queue.write_buffer(
                &self.params,
                self.params_stride_bytes,
                &self.params_bytes[stride..],
            );
        }

        let mut first_leaf = 0;
        while first_leaf < leaf_count {
            let piece_leaves = piece_leaves_max.min(leaf_count - first_leaf);
            if let Some(data) = data {
                let piece =
                    &data[first_leaf * leaf_bytes..(first_leaf + piece_leaves) * leaf_bytes];
                self.upload_piece(piece);
            }
            let mut slot = [0u8; PARAMS_BYTES as usize];
            write_params(
                &mut slot,
                key,
                piece_leaves as u64,
                leaf_bytes as u64,
                0,
                first_leaf as u64,
            );
            self.context.queue.write_buffer(&self.params, 0, &slot);
            let last_piece = first_leaf + piece_leaves == leaf_count;
            let mut encoder =
                self.context
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("merkle"),
                    });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("merkle"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&self.leaves_pipeline);
                pass.set_bind_group(0, &self.bind_group, &[0]);
                let (x, y) = self.workgroups(piece_leaves as u64)?;
                pass.dispatch_workgroups(x, y, 1);
                if last_piece {
                    pass.set_pipeline(&self.nodes_pipeline);
                    for (level, &(_, count)) in
                        levels.spans[..levels.spans.len() - 1].iter().enumerate()
                    {
                        let offset = ((level + 1) as u64 * self.params_stride_bytes) as u32;
                        pass.set_bind_group(0, &self.bind_group, &[offset]);
                        let (x, y) = self.workgroups(count.div_ceil(2))?;
                        pass.dispatch_workgroups(x, y, 1);
                    }
                }
            }
            if last_piece {
                encoder.copy_buffer_to_buffer(
                    &self.tree,
                    readback_offset * HASH_BYTES as u64,
                    &self.readback,
                    0,
                    readback_bytes,
                );
            }
            self.context.queue.submit([encoder.finish()]);
            first_leaf += piece_leaves;
        }
        Ok(readback_bytes)
    }

    /// Writes `piece` at byte 0 of the data buffer; a tail of 1..=3 bytes is zero-padded
    /// because buffer writes must be whole words.
    fn upload_piece(&mut self, piece: &[u8]) {
        self.last_upload_bytes += piece.len() as u64;
        let aligned = piece.len() & !3;
        if aligned > 0 {
            self.context
                .queue
                .write_buffer(&self.data, 0, &piece[..aligned]);
        }
        if aligned < piece.len() {
            let mut tail = [0u8; 4];
            tail[..piece.len() - aligned].copy_from_slice(&piece[aligned..]);
            self.context
                .queue
                .write_buffer(&self.data, aligned as u64, &tail);
        }
    }

    /// Grows the buffers (to the next power of two) that are smaller than needed.
    fn reserve(&mut self, data_bytes: u64, tree_bytes: u64, readback_bytes: u64) {
        let device = &self.context.device;
        // Power-of-two growth may pass the binding limit; the exact size never does.
        let binding_bytes_max = self.binding_bytes_max();
        let grown = |needed: u64| {
            needed
                .max(BUFFER_BYTES_MIN)
                .next_power_of_two()
                .min(binding_bytes_max)
                .max(needed)
        };
        let mut rebind = false;
        if self.data.size() < data_bytes {
            self.data = create_buffer(device, "merkle data", grown(data_bytes), data_usage());
            rebind = true;
        }
        if self.tree.size() < tree_bytes {
            // Power-of-two growth may pass the binding limit; the exact size never does.
            let size = grown(tree_bytes)
                .min(self.binding_bytes_max())
                .max(tree_bytes);
            self.tree = create_buffer(device, "merkle tree", size, tree_usage());
            rebind = true;
        }
        if self.readback.size() < readback_bytes {
            self.readback = create_buffer(
                device,
                "merkle readback",
                grown(readback_bytes),
                readback_usage(),
            );
        }
        if rebind {
            self.bind_group =
                bind_group(device, &self.layout, &self.params, &self.data, &self.tree);
        }
    }

    fn binding_bytes_max(&self) -> u64 {
        let limits = &self.context.limits;
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
    }

    /// A 2-D grid of workgroups covering `invocations`, within the per-dimension limit.
    fn workgroups(&self, invocations: u64) -> Result<(u32, u32), GpuError> {
        let per_dimension_max = u64::from(self.context.limits.max_compute_workgroups_per_dimension);
        let groups = invocations.div_ceil(u64::from(WORKGROUP_SIZE)).max(1);
        let x = groups.min(per_dimension_max);
        let y = groups.div_ceil(x);
        if y > per_dimension_max {
            return Err(GpuError::TooLarge {
                what: "the workgroup grid",
                needed_bytes: groups,
                limit_bytes: per_dimension_max * per_dimension_max,
            });
        }
        Ok((x as u32, y as u32))
    }
}

/// Checks the leaf layout; returns the leaf count.
fn check_leaves(data: &[u8], leaf_bytes: usize, leaf_count: usize) -> Result<usize, GpuError> {
    if leaf_bytes > LEAF_BYTES_MAX {
        return Err(GpuError::InvalidInput(format!(
            "leaf_bytes {leaf_bytes} is above {LEAF_BYTES_MAX} (one BLAKE3 chunk); use the CPU backend"
        )));
    }
    if leaf_bytes.checked_mul(leaf_count) != Some(data.len()) {
        return Err(GpuError::InvalidInput(format!(
            "{} bytes of data are not {leaf_count} leaves of {leaf_bytes} bytes",
            data.len()
        )));
    }
    if leaf_count as u64 >= 1 << 28 {
        return Err(GpuError::TooLarge {
            what: "the leaf count (as tree nodes)",
            needed_bytes: leaf_count as u64,
            limit_bytes: (1 << 28) - 1,
        });
    }
    Ok(leaf_count)
}

/// Serialises the shaders' `Params` struct (little-endian words).
fn write_params(
    slot: &mut [u8],
    key: &[u8; 32],
    count: u64,
    leaf_bytes: u64,
    in_offset: u64,
    out_offset: u64,
) {
    slot[..32].copy_from_slice(key);
    // The callers keep these below 2^29 (checked in check_leaves).
    let words = [count, leaf_bytes, in_offset, out_offset]
        .map(|value| u32::try_from(value).expect("params fit u32 (checked by check_leaves)"));
    for (index, word) in words.iter().enumerate() {
        slot[32 + 4 * index..][..4].copy_from_slice(&word.to_le_bytes());
    }
}

fn data_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
}

fn tree_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC
}

fn readback_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST
}

fn create_buffer(
    device: &wgpu::Device,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage,
        mapped_at_creation: false,
    })
}

fn bind_group(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    params: &wgpu::Buffer,
    data: &wgpu::Buffer,
    tree: &wgpu::Buffer,
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("merkle"),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: params,
                    offset: 0,
                    size: NonZeroU64::new(PARAMS_BYTES),
                }),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: data.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: tree.as_entire_binding(),
            },
        ],
    })
}
