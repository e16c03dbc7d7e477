//! GPU Ed25519 verification, the host side: WGSL kernels in `shaders/ed25519/` (built from
//! the one loader, `crate::gpu::shader`), one thread per signature.
//!
//! The kernels make ed25519-zebra's single-verifier check, `[8](R - (sB + k(-A))) ==
//! identity`, with ZIP-215 decompression of `R` and `A` (see docs/VERIFY_RULES.md). The host
//! checks `S < L` and computes `k = SHA-512(R || A || M) mod L` (rayon) while the GPU works on
//! the previous sub-batch. Field elements are 16 limbs of 16 bits in u32 (representation and
//! bounds are documented in `shaders/ed25519/field.wgsl`): no 64-bit integers needed.
//!
//! The check is split into small pipelines (`shaders/ed25519/verify.wgsl`): `prepare`
//! decompresses the points (one thread per point), then `ladder` runs [`LADDER_PASSES`] times
//! over a range of the point additions each, keeping its accumulator in a per-item `state`
//! buffer. Each
//! pipeline holds one inlined point addition or decompression, so shader compilers finish it
//! quickly (llvmpipe: seconds; the whole check as one kernel did not compile in 14 minutes).
//! [`GpuEd25519::pipeline_compile_times`] reports what each pipeline cost on this adapter.
//!
//! Tables of `j P`, `j = 0..15`, live in one storage buffer: slot 0 is the base point, slot
//! `i + 1` registered key `i`. The host builds them from curve25519-dalek's points (the
//! reference's own arithmetic; `gpu_tables.rs`). Unregistered keys are decompressed and tabulated per item on
//! the GPU, in the item's `state`.
//!
//! Buffers are allocated once in [`GpuEd25519::new`]: two sets (items, state, verdicts,
//! readback, params) of [`GPU_BATCH_ITEMS_MAX`] items, used in turn, so that the host prepares
//! and uploads sub-batch N+1 while the GPU computes sub-batch N.
//!
//! Two input layouts, one set of pipelines (the kernels read R, A, s at a stride and word
//! offsets given per dispatch, k and the key slot at another; `verify.wgsl` documents both):
//! - [`GpuEd25519::verify_with`]: the host packs [`ITEM_WORDS`] words per item (R, A, s, k,
//!   slot: 132 bytes uploaded per item);
//! - [`GpuEd25519::verify_records`]: R, A and s are read from records already in a GPU buffer
//!   (a block's transaction records, uploaded once and also hashed as the Merkle leaves, see
//!   [`crate::gpu::GpuBlock`]); the host uploads only k and the slot, [`KEY_ITEM_WORDS`] words
//!   (36 bytes) per item.
//!
//! Just over 800 lines, kept whole: one type, whose buffers, pipelines and double-buffered
//! sub-batch loop read best together. The host's key-table arithmetic and per-item packing
//! are in `gpu_tables.rs`, the fault type of the test hooks in `crate::testing`.

use super::gpu_tables;
use super::gpu_tables::{gpu_key_words, pack_gpu_item};
use super::keys::KeyRegistry;
use super::SigItem;
use crate::gpu::block::RecordLayout;
use crate::gpu::shader::Shader;
use crate::gpu::{GpuContext, GpuError};
#[cfg(feature = "testing")]
use crate::testing::InjectedFault;
use std::num::NonZeroU64;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// u32 words per item in the upload buffer of [`GpuEd25519::verify_with`] (layout in
/// `verify.wgsl`).
pub const ITEM_WORDS: usize = 33;
/// u32 words per item uploaded by [`GpuEd25519::verify_records`]: k (8 words), key slot.
pub const KEY_ITEM_WORDS: usize = 9;
/// Key slot value: the kernel decompresses `A` itself.
pub const KEY_DECOMPRESS: u32 = u32::MAX;
/// Key slot value: the item is already invalid (`S >= L`), the kernel writes false.
pub const KEY_SKIP: u32 = u32::MAX - 1;
/// Most items per sub-batch (per upload buffer): 2.2 MB of items and 37.9 MB of state.
pub const GPU_BATCH_ITEMS_MAX: usize = 16384;
/// Most registered keys with GPU tables (2 KiB each); further keys are decompressed per item.
pub const GPU_KEY_TABLES_MAX: usize = 4096;
/// Dispatches of the `ladder` kernel per sub-batch; each runs about 1/6 of the additions,
/// so no single dispatch runs long enough to trip a display driver's watchdog.
pub const LADDER_PASSES: usize = 6;

/// Invocations per workgroup; must match `@workgroup_size` in the shaders.
pub(crate) const WORKGROUP_ITEMS: usize = 64;
/// Words of one packed point (4 coordinates of 8 words) and of one 16-entry table.
pub(super) const PT_WORDS: usize = 32;
pub(super) const TABLE_WORDS: usize = 16 * PT_WORDS;
/// Per-item state: own table, R, accumulator, two flags (`verify.wgsl`).
const STATE_WORDS: usize = TABLE_WORDS + 2 * PT_WORDS + 2;
/// Point additions of the longest item (own table, 64 windows, tail), as in `verify.wgsl`.
const TOTAL_OPS_MAX: u32 = 14 + 384 + 4;
const TABLE_SLOTS_MAX: usize = 1 + GPU_KEY_TABLES_MAX;
/// The shaders' `Params`: 11 u32 and a pad word.
const PARAMS_BYTES: u64 = 48;
const PARAMS_WORDS: usize = PARAMS_BYTES as usize / 4;
/// Stride of the per-dispatch parameters (the dynamic offset alignment WebGPU guarantees).
const PARAMS_STRIDE: u64 = 256;

/// The per-dispatch parameters that say where the kernels read their inputs.
#[derive(Clone, Copy)]
struct InputWords {
    first_record: u32,
    record_stride: u32,
    r: u32,
    a: u32,
    s: u32,
    key_stride: u32,
    k: u32,
}

/// The packed layout of [`GpuEd25519::verify_with`]: items are their own records.
const PACKED_INPUT: InputWords = InputWords {
    first_record: 0,
    record_stride: ITEM_WORDS as u32,
    r: 0,
    a: 8,
    s: 16,
    key_stride: ITEM_WORDS as u32,
    k: 24,
};

struct Slot {
    items: wgpu::Buffer,
    state: wgpu::Buffer,
    verdicts: wgpu::Buffer,
    readback: wgpu::Buffer,
    params: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// Host staging, reused across calls.
struct Staging {
    words: Vec<u32>,
    params: Vec<u32>,
}

/// The GPU verifier: pipelines and buffers on one [`GpuContext`].
pub struct GpuEd25519 {
    context: Arc<GpuContext>,
    layout: wgpu::BindGroupLayout,
    prepare_pipeline: wgpu::ComputePipeline,
    ladder_pipeline: wgpu::ComputePipeline,
    tables: wgpu::Buffer,
    /// Filled table slots (1 + registered keys with tables).
    slot_count: u32,
    slots: [Slot; 2],
    staging: Mutex<Staging>,
    compile_times: Vec<(&'static str, Duration)>,
    /// Items per sub-batch: [`GPU_BATCH_ITEMS_MAX`] unless a test made it smaller.
    sub_batch_items: AtomicUsize,
    #[cfg(feature = "testing")]
    fault: Mutex<Option<InjectedFault>>,
    /// Bytes the last verify call wrote to the GPU (items or k and slots; not parameters).
    last_upload_bytes: AtomicU64,
}

impl GpuEd25519 {
    /// Compiles the kernels (and runs each once, empty, so that drivers that compile at first
    /// dispatch do it here), allocates every buffer, and uploads the base point table.
    ///
    /// Errors: `TooLarge` when the adapter's storage limits are below the fixed buffer sizes,
    /// `Validation`/`DeviceLost` when the device rejects a kernel or is lost.
    pub fn new(context: Arc<GpuContext>) -> Result<GpuEd25519, GpuError> {
        let device = &context.device;
        let items_bytes = (GPU_BATCH_ITEMS_MAX * ITEM_WORDS * 4) as u64;
        let state_bytes = (GPU_BATCH_ITEMS_MAX * STATE_WORDS * 4) as u64;
        let tables_bytes = (TABLE_SLOTS_MAX * TABLE_WORDS * 4) as u64;
        let limit = context
            .limits
            .max_storage_buffer_binding_size
            .min(context.limits.max_buffer_size);
        for (what, needed_bytes) in [
            ("the ed25519 item buffer", items_bytes),
            ("the ed25519 state buffer", state_bytes),
            ("the ed25519 key tables", tables_bytes),
        ] {
            if needed_bytes > limit {
                return Err(GpuError::TooLarge {
                    what,
                    needed_bytes,
                    limit_bytes: limit,
                });
            }
        }
        let storage_entry = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
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
            label: Some("ed25519_verify"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, true),
                storage_entry(2, false),
                storage_entry(3, false),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: NonZeroU64::new(PARAMS_BYTES),
                    },
                    count: None,
                },
                storage_entry(5, true),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("ed25519_verify"),
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
        let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        let tables = buffer("ed25519_tables", tables_bytes, storage);
        let make_slot = || {
            let items = buffer("ed25519_items", items_bytes, storage);
            let state = buffer("ed25519_state", state_bytes, wgpu::BufferUsages::STORAGE);
            let verdicts = buffer(
                "ed25519_verdicts",
                (GPU_BATCH_ITEMS_MAX * 4) as u64,
                storage,
            );
            let readback = buffer(
                "ed25519_readback",
                (GPU_BATCH_ITEMS_MAX * 4) as u64,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let params = buffer(
                "ed25519_params",
                PARAMS_STRIDE * (LADDER_PASSES as u64 + 1),
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("ed25519_verify"),
                layout: &layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: items.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: tables.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: state.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: verdicts.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &params,
                            offset: 0,
                            size: NonZeroU64::new(PARAMS_BYTES),
                        }),
                    },
                    // Packed items: R, A, s and k, slot from the same buffer.
                    wgpu::BindGroupEntry {
                        binding: 5,
                        resource: items.as_entire_binding(),
                    },
                ],
            });
            Slot {
                items,
                state,
                verdicts,
                readback,
                params,
                bind_group,
            }
        };
        let slots = [make_slot(), make_slot()];
        // Pipelines: created, then run once over zero items, each timed on its own (llvmpipe
        // compiles at the first dispatch).
        let mut compile_times = Vec::new();
        let mut pipelines = Vec::new();
        for shader in [Shader::Ed25519Prepare, Shader::Ed25519Ladder] {
            let label = shader.label();
            let started = Instant::now();
            let pipeline = pipeline(shader);
            let mut params = [0u32; PARAMS_WORDS];
            params[1] = 1;
            write_input_words(&mut params, &PACKED_INPUT);
            context
                .queue
                .write_buffer(&slots[0].params, 0, &words_to_bytes(&params));
            let mut encoder = device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &slots[0].bind_group, &[0]);
                pass.dispatch_workgroups(1, 1, 1);
            }
            context.queue.submit([encoder.finish()]);
            context.wait_idle()?;
            let elapsed = started.elapsed();
            tracing::info!(
                pipeline = label,
                adapter = %context.info.name,
                compile_ms = elapsed.as_millis() as u64,
                "ed25519 pipeline compiled"
            );
            compile_times.push((label, elapsed));
            pipelines.push(pipeline);
        }
        let ladder_pipeline = pipelines.pop().expect("two pipelines");
        let prepare_pipeline = pipelines.pop().expect("two pipelines");
        context.check_health()?;
        let mut gpu = GpuEd25519 {
            context,
            layout,
            prepare_pipeline,
            ladder_pipeline,
            tables,
            slot_count: 0,
            slots,
            staging: Mutex::new(Staging {
                words: Vec::with_capacity(GPU_BATCH_ITEMS_MAX * ITEM_WORDS),
                params: Vec::with_capacity((LADDER_PASSES + 1) * PARAMS_STRIDE as usize / 4),
            }),
            compile_times,
            sub_batch_items: AtomicUsize::new(GPU_BATCH_ITEMS_MAX),
            #[cfg(feature = "testing")]
            fault: Mutex::new(None),
            last_upload_bytes: AtomicU64::new(0),
        };
        gpu.build_tables(&[])?;
        Ok(gpu)
    }

    /// The context this verifier runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.context
    }

    /// How long each pipeline took to compile and run once empty, when this verifier was
    /// built (on llvmpipe: the LLVM compile; on a GPU mostly the driver's compile).
    pub fn pipeline_compile_times(&self) -> &[(&'static str, Duration)] {
        &self.compile_times
    }

    /// Rebuilds all tables: the base point in slot 0, `keys[i]` in slot `i + 1`, for at most
    /// [`GPU_KEY_TABLES_MAX`] keys. The host computes the entries `j(-A)` with
    /// curve25519-dalek from its ZIP-215 decompression of each key; returns how many keys got
    /// tables.
    ///
    /// Errors: `InvalidInput` when a key is not a valid point encoding (the caller registers
    /// only keys that decompress), any error of the device.
    pub fn build_tables(&mut self, keys: &[[u8; 32]]) -> Result<usize, GpuError> {
        let (words, key_count) = gpu_tables::table_words(keys)?;
        // Nothing may read the old tables while they change: wait for pending work.
        self.context.wait_idle()?;
        self.slot_count = 0;
        self.context
            .queue
            .write_buffer(&self.tables, 0, &words_to_bytes(&words));
        self.context.wait_idle()?;
        self.slot_count = (words.len() / TABLE_WORDS) as u32;
        Ok(key_count)
    }

    /// Verifies `item_count` items. `pack(range, words)` fills `words` (`range.len() *
    /// ITEM_WORDS` words) with the packed items of `range`; it runs on the host while the GPU
    /// computes the previous sub-batch. `verdicts[i]` gets the kernel's verdict of item `i`.
    ///
    /// Errors: any `GpuError` (device lost, mapping failed, kernel error): the verdicts are
    /// then void and the caller must verify the batch on the CPU.
    pub fn verify_with(
        &self,
        item_count: usize,
        pack: impl Fn(Range<usize>, &mut [u32]),
        verdicts: &mut [bool],
    ) -> Result<(), GpuError> {
        self.run_sub_batches(item_count, None, ITEM_WORDS, pack, verdicts)
    }

    /// Verifies `item_count` items whose R, A and s lie in `records`, record `i` at byte
    /// `i * layout.record_bytes` (the buffer needs `STORAGE` usage and is only read).
    /// `fill_keys(range, words)` fills `words` (`range.len() * KEY_ITEM_WORDS` words) with k
    /// (8 words) and the key slot of each item of `range`, on the host while the GPU computes
    /// the previous sub-batch; only those words are uploaded.
    ///
    /// Errors: `InvalidInput` for a bad layout or a buffer smaller than the records (or above
    /// the adapter's binding limit); otherwise as [`Self::verify_with`].
    pub fn verify_records(
        &self,
        records: &wgpu::Buffer,
        layout: &RecordLayout,
        item_count: usize,
        fill_keys: impl Fn(Range<usize>, &mut [u32]),
        verdicts: &mut [bool],
    ) -> Result<(), GpuError> {
        layout.check()?;
        let records_bytes = (item_count as u64) * layout.record_bytes as u64;
        let binding_max = self
            .context
            .limits
            .max_storage_buffer_binding_size
            .min(self.context.limits.max_buffer_size)
            .min(u64::from(u32::MAX));
        if records_bytes > records.size() || records_bytes > binding_max {
            return Err(GpuError::InvalidInput(format!(
                "{item_count} records of {} bytes ({records_bytes} bytes) do not fit the {}-byte records buffer within the {binding_max}-byte binding limit",
                layout.record_bytes,
                records.size()
            )));
        }
        if item_count == 0 {
            assert!(verdicts.is_empty(), "one verdict slot per item");
            self.last_upload_bytes.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let words = |bytes: usize| (bytes / 4) as u32;
        let input = InputWords {
            first_record: 0,
            record_stride: words(layout.record_bytes),
            r: words(layout.r),
            a: words(layout.public_key),
            s: words(layout.s),
            key_stride: KEY_ITEM_WORDS as u32,
            k: 0,
        };
        let bind_group = |slot: &Slot| {
            self.context
                .device
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("ed25519_verify_records"),
                    layout: &self.layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: records,
                                offset: 0,
                                size: NonZeroU64::new(records_bytes),
                            }),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: self.tables.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: slot.state.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: slot.verdicts.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 4,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &slot.params,
                                offset: 0,
                                size: NonZeroU64::new(PARAMS_BYTES),
                            }),
                        },
                        // k and slot of the sub-batch, in the slot's item buffer.
                        wgpu::BindGroupEntry {
                            binding: 5,
                            resource: slot.items.as_entire_binding(),
                        },
                    ],
                })
        };
        let bind_groups = [bind_group(&self.slots[0]), bind_group(&self.slots[1])];
        self.run_sub_batches(
            item_count,
            Some((&bind_groups, input)),
            KEY_ITEM_WORDS,
            fill_keys,
            verdicts,
        )
    }

    /// Bytes the last [`Self::verify_with`] or [`Self::verify_records`] call uploaded: the
    /// packed items, or the k and slot words (the per-dispatch parameters, a few hundred
    /// bytes per sub-batch, are not counted).
    pub fn last_upload_bytes(&self) -> u64 {
        self.last_upload_bytes.load(Ordering::Relaxed)
    }

    /// Sets [`Self::last_upload_bytes`] to 0 (a caller about to report it after a call that
    /// may fail before uploading).
    pub(crate) fn clear_upload_bytes(&self) {
        self.last_upload_bytes.store(0, Ordering::Relaxed);
    }

    /// The double-buffered sub-batch loop of both layouts. `records`: the bind groups (one
    /// per slot) and input words of records already on the GPU; `None` for packed items.
    /// `fill(range, words)` writes `item_words` words per item of `range`.
    fn run_sub_batches(
        &self,
        item_count: usize,
        records: Option<(&[wgpu::BindGroup; 2], InputWords)>,
        item_words: usize,
        fill: impl Fn(Range<usize>, &mut [u32]),
        verdicts: &mut [bool],
    ) -> Result<(), GpuError> {
        assert_eq!(verdicts.len(), item_count);
        self.last_upload_bytes.store(0, Ordering::Relaxed);
        let mut staging = self
            .staging
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let staging = &mut *staging;
        let sub_batch_items = self.sub_batch_items.load(Ordering::Relaxed);
        let mut pending: Option<(usize, Range<usize>, wgpu::SubmissionIndex)> = None;
        let mut start = 0;
        let mut turn = 0;
        let mut uploaded = 0u64;
        while start < item_count || pending.is_some() {
            let mut submitted = None;
            if start < item_count {
                if self.device_loss_injected(turn) {
                    tracing::warn!(sub_batch = turn, "injected fault: destroying the device");
                    self.context.device.destroy();
                }
                self.context.check_health()?;
                let range = start..(start + sub_batch_items).min(item_count);
                let slot = &self.slots[turn % 2];
                let (bind_group, input) = match records {
                    Some((bind_groups, input)) => (
                        &bind_groups[turn % 2],
                        InputWords {
                            first_record: range.start as u32,
                            ..input
                        },
                    ),
                    None => (&slot.bind_group, PACKED_INPUT),
                };
                staging.words.clear();
                staging.words.resize(range.len() * item_words, 0);
                fill(range.clone(), &mut staging.words);
                let bytes = words_to_bytes(&staging.words);
                uploaded += bytes.len() as u64;
                self.context.queue.write_buffer(&slot.items, 0, &bytes);
                staging.params.clear();
                staging
                    .params
                    .resize((LADDER_PASSES + 1) * PARAMS_STRIDE as usize / 4, 0);
                let ops_per_pass = TOTAL_OPS_MAX.div_ceil(LADDER_PASSES as u32);
                for pass in 0..LADDER_PASSES as u32 {
                    let at = pass as usize * PARAMS_STRIDE as usize / 4;
                    let params = &mut staging.params[at..at + PARAMS_WORDS];
                    params[..4].copy_from_slice(&[
                        range.len() as u32,
                        self.slot_count,
                        pass * ops_per_pass,
                        ((pass + 1) * ops_per_pass).min(TOTAL_OPS_MAX),
                    ]);
                    write_input_words(params, &input);
                }
                self.context
                    .queue
                    .write_buffer(&slot.params, 0, &words_to_bytes(&staging.params));
                let mut encoder =
                    self.context
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("ed25519_verify"),
                        });
                // Zero the verdicts: 0 means pending; the first `ladder` pass writes 2 for
                // items that failed decompression, the last one 1 or 2 for the rest, so a 0
                // read back means an item the kernels never finished.
                encoder.clear_buffer(&slot.verdicts, 0, Some((range.len() * 4) as u64));
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("ed25519_verify"),
                        timestamp_writes: None,
                    });
                    let workgroups = range.len().div_ceil(WORKGROUP_ITEMS) as u32;
                    // Two `prepare` threads per item (R and A).
                    pass.set_pipeline(&self.prepare_pipeline);
                    pass.set_bind_group(0, bind_group, &[0]);
                    pass.dispatch_workgroups(
                        (2 * range.len()).div_ceil(WORKGROUP_ITEMS) as u32,
                        1,
                        1,
                    );
                    pass.set_pipeline(&self.ladder_pipeline);
                    for ladder_pass in 0..LADDER_PASSES as u32 {
                        pass.set_bind_group(0, bind_group, &[ladder_pass * PARAMS_STRIDE as u32]);
                        pass.dispatch_workgroups(workgroups, 1, 1);
                    }
                }
                encoder.copy_buffer_to_buffer(
                    &slot.verdicts,
                    0,
                    &slot.readback,
                    0,
                    (range.len() * 4) as u64,
                );
                let index = self.context.queue.submit([encoder.finish()]);
                submitted = Some((turn, range.clone(), index));
                start = range.end;
                turn += 1;
            }
            if let Some((sub_batch, range, index)) = pending.take() {
                self.read_verdicts(sub_batch, range.clone(), index, &mut verdicts[range])?;
            }
            pending = submitted;
            if start >= item_count {
                if let Some((sub_batch, range, index)) = pending.take() {
                    self.read_verdicts(sub_batch, range.clone(), index, &mut verdicts[range])?;
                }
            }
        }
        self.last_upload_bytes.store(uploaded, Ordering::Relaxed);
        Ok(())
    }

    fn read_verdicts(
        &self,
        sub_batch: usize,
        range: Range<usize>,
        index: wgpu::SubmissionIndex,
        verdicts: &mut [bool],
    ) -> Result<(), GpuError> {
        let slot = &self.slots[sub_batch % 2];
        let bytes = (range.len() * 4) as u64;
        let slice = slot.readback.slice(..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            // The receiver lives until recv below returns.
            let _ = sender.send(result);
        });
        self.context
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|error| GpuError::Poll(error.to_string()))?;
        self.context.check_health()?;
        match receiver.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(GpuError::Map(error.to_string())),
            Err(_) => return Err(GpuError::Map("map callback never ran".to_owned())),
        }
        let result = (|| {
            if self.map_failure_injected(sub_batch) {
                return Err(GpuError::Map(format!(
                    "injected mapping failure on sub-batch {sub_batch}"
                )));
            }
            let view = slice
                .get_mapped_range()
                .map_err(|error| GpuError::Map(error.to_string()))?;
            for (verdict, word) in verdicts.iter_mut().zip(view.chunks_exact(4)) {
                match word {
                    [1, 0, 0, 0] => *verdict = true,
                    [2, 0, 0, 0] => *verdict = false,
                    _ => return Err(GpuError::Validation(format!(
                        "verdict word {word:?} is neither 1 (valid) nor 2 (invalid): the kernels did not finish an item"
                    ))),
                }
            }
            Ok(())
        })();
        slot.readback.unmap();
        result
    }
}

/// Registered keys and their GPU tables for a GPU user other than [`super::Verifier`]
/// ([`crate::gpu::GpuBlock`]): the same host preparation (`super::prepare`) and the same CPU
/// fallback as the verifier's.
pub(crate) struct HostKeys {
    registry: KeyRegistry,
    /// Registered keys with GPU tables (the first ones of the registry).
    table_keys: usize,
}

impl HostKeys {
    pub(crate) fn new() -> Self {
        HostKeys {
            registry: KeyRegistry::new(),
            table_keys: 0,
        }
    }

    /// Registers `keys` (as [`super::Verifier::register_keys`]) and rebuilds `gpu`'s tables.
    ///
    /// Errors: those of [`GpuEd25519::build_tables`]; the keys stay registered, without
    /// tables (verdicts do not change, only speed).
    pub(crate) fn register(
        &mut self,
        keys: &[[u8; 32]],
        gpu: &mut GpuEd25519,
    ) -> Result<usize, GpuError> {
        self.registry.register(keys);
        self.table_keys = 0;
        self.table_keys = gpu.build_tables(self.registry.keys())?;
        Ok(self.table_keys)
    }

    /// k and the slot of `item` ([`KEY_ITEM_WORDS`] words), as `super::gpu_tables::gpu_key_words` writes them.
    pub(crate) fn key_words(&self, item: &SigItem<'_>, words: &mut [u32]) {
        gpu_key_words(&self.registry, self.table_keys, item, words);
    }

    /// Packs `item` for [`GpuEd25519::verify_with`] ([`ITEM_WORDS`] words).
    pub(crate) fn packed_words(&self, item: &SigItem<'_>, words: &mut [u32]) {
        pack_gpu_item(&self.registry, self.table_keys, item, words);
    }

    /// The CPU batch verifier over the same registry.
    pub(crate) fn verify_cpu(&self, items: &[SigItem<'_>], verdicts: &mut [bool]) {
        super::cpu::verify_batch(&self.registry, items, verdicts);
    }
}

/// Test hooks (feature `testing`): sub-batch size and fault injection.
#[cfg(feature = "testing")]
impl GpuEd25519 {
    /// Makes sub-batches at most `items` long (clamped to 1..=[`GPU_BATCH_ITEMS_MAX`]), so
    /// that small tests cross sub-batch boundaries.
    pub fn set_sub_batch_items(&self, items: usize) {
        self.sub_batch_items
            .store(items.clamp(1, GPU_BATCH_ITEMS_MAX), Ordering::Relaxed);
    }

    /// Arms (or clears) a fault for the next verify call that reaches it; it fires once.
    pub fn inject_fault(&self, fault: Option<InjectedFault>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// Takes the armed fault if `which` gives `sub_batch` for it.
    fn take_fault(&self, sub_batch: usize, which: fn(&InjectedFault) -> Option<usize>) -> bool {
        let mut fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        if fault.as_ref().and_then(which) == Some(sub_batch) {
            *fault = None;
            return true;
        }
        false
    }

    /// Whether an armed `DeviceLoss` fires before sub-batch `sub_batch` is submitted.
    fn device_loss_injected(&self, sub_batch: usize) -> bool {
        self.take_fault(sub_batch, |fault| match fault {
            InjectedFault::DeviceLoss { sub_batch } => Some(*sub_batch),
            _ => None,
        })
    }

    /// Whether an armed `MapFailure` fires when sub-batch `sub_batch` is read back.
    fn map_failure_injected(&self, sub_batch: usize) -> bool {
        self.take_fault(sub_batch, |fault| match fault {
            InjectedFault::MapFailure { sub_batch } => Some(*sub_batch),
            _ => None,
        })
    }
}

/// Without the `testing` feature no fault can be armed.
#[cfg(not(feature = "testing"))]
impl GpuEd25519 {
    fn device_loss_injected(&self, _sub_batch: usize) -> bool {
        false
    }

    fn map_failure_injected(&self, _sub_batch: usize) -> bool {
        false
    }
}

/// Writes the input-location words (4..12) of one `Params` slot.
fn write_input_words(params: &mut [u32], input: &InputWords) {
    params[4..PARAMS_WORDS].copy_from_slice(&[
        input.first_record,
        input.record_stride,
        input.r,
        input.a,
        input.s,
        input.key_stride,
        input.k,
        0,
    ]);
}

/// The words as little-endian bytes, for `write_buffer`.
pub(crate) fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}
