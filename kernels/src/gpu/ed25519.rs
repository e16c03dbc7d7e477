//! GPU Ed25519 verification: WGSL kernels in `shaders/ed25519/`, one thread per signature.
//!
//! The kernels make ed25519-zebra's single-verifier check, `[8](R - (sB + k(-A))) ==
//! identity`, with ZIP-215 decompression of `R` and `A` (see docs/VERIFY_RULES.md). The host
//! checks `S < L` and computes `k = SHA-512(R || A || M) mod L` (rayon) while the GPU works on
//! the previous sub-batch. Field elements are 16 limbs of 16 bits in u32 (representation and
//! bounds are documented in `shaders/ed25519/field.wgsl`): no 64-bit integers needed.
//!
//! The check is split into small pipelines (`shaders/ed25519/verify.wgsl`): `prepare`
//! decompresses the points (one thread per point), then `ladder` runs [`LADDER_PASSES`] times over a range of the
//! point additions each, keeping its accumulator in a per-item `state` buffer. Each
//! pipeline holds one inlined point addition or decompression, so shader compilers finish it
//! quickly (llvmpipe: seconds; the whole check as one kernel did not compile in 14 minutes).
//! [`GpuEd25519::pipeline_compile_times`] reports what each pipeline cost on this adapter.
//!
//! Tables of `j P`, `j = 0..15`, live in one storage buffer: slot 0 is the base point, slot
//! `i + 1` registered key `i`. The host builds them from curve25519-dalek's points (the
//! reference's own arithmetic). Unregistered keys are decompressed and tabulated per item on
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
//!   [`super::GpuBlock`]); the host uploads only k and the slot, [`KEY_ITEM_WORDS`] words
//!   (36 bytes) per item.

use super::{GpuContext, GpuError};
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use rayon::prelude::*;
use std::num::NonZeroU64;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Field arithmetic library (no entry point).
pub const FIELD_WGSL: &str = include_str!("../../../shaders/ed25519/field.wgsl");
/// Point arithmetic and decompression library (no entry point).
pub const CURVE_WGSL: &str = include_str!("../../../shaders/ed25519/curve.wgsl");
/// Layout, bindings and helpers shared by the verification kernels (no entry point).
pub const VERIFY_WGSL: &str = include_str!("../../../shaders/ed25519/verify.wgsl");
/// Entry point `prepare` (needs [`VERIFY_WGSL`]).
pub const PREPARE_WGSL: &str = include_str!("../../../shaders/ed25519/prepare.wgsl");
/// Entry point `ladder` (needs [`VERIFY_WGSL`]).
pub const LADDER_WGSL: &str = include_str!("../../../shaders/ed25519/ladder.wgsl");
/// Test entry point `field_ops`.
pub const FIELD_TEST_WGSL: &str = include_str!("../../../shaders/ed25519/field_test.wgsl");
/// Test entry point `point_ops`.
pub const POINT_TEST_WGSL: &str = include_str!("../../../shaders/ed25519/point_test.wgsl");

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

const WORKGROUP_ITEMS: usize = 64;
/// Words of one packed point (4 coordinates of 8 words) and of one 16-entry table.
const PT_WORDS: usize = 32;
const TABLE_WORDS: usize = 16 * PT_WORDS;
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

/// A fault the host injects into [`GpuEd25519::verify_with`], for tests of the CPU fallback.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedFault {
    /// Reading back sub-batch `sub_batch` (0-based, within one call) reports a mapping
    /// failure, as a real `map_async` error would.
    MapFailure { sub_batch: usize },
    /// The device is destroyed (lost for real) before sub-batch `sub_batch` is submitted.
    DeviceLoss { sub_batch: usize },
}

/// The WGSL of an entry file with the field and curve libraries prepended.
pub fn shader_source(entry_wgsl: &str) -> String {
    let mut source =
        String::with_capacity(FIELD_WGSL.len() + CURVE_WGSL.len() + entry_wgsl.len() + 2);
    source.push_str(FIELD_WGSL);
    source.push('\n');
    source.push_str(CURVE_WGSL);
    source.push('\n');
    source.push_str(entry_wgsl);
    source
}

/// Packs 32 little-endian bytes into 8 u32 words.
pub fn bytes_to_words(bytes: &[u8; 32], words: &mut [u32]) {
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
}

/// Where a block's records keep the signature parts, in bytes (all multiples of 4: the kernels
/// read whole words). `r` and `s` are the signature's two halves, `public_key` is A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLayout {
    /// Bytes per record (the stride).
    pub record_bytes: usize,
    /// Offset of the 32-byte public key A inside a record.
    pub public_key: usize,
    /// Offset of the 32-byte R (signature bytes 0..32).
    pub r: usize,
    /// Offset of the 32-byte S (signature bytes 32..64).
    pub s: usize,
}

impl RecordLayout {
    /// Checks the layout: stride and offsets multiples of 4, each 32-byte field inside the
    /// record, at most [`super::merkle::LEAF_BYTES_MAX`] bytes per record (the GPU Merkle
    /// leaf limit).
    ///
    /// Errors: `InvalidInput` naming the first offending field.
    pub fn check(&self) -> Result<(), GpuError> {
        if self.record_bytes == 0
            || !self.record_bytes.is_multiple_of(4)
            || self.record_bytes > super::merkle::LEAF_BYTES_MAX
        {
            return Err(GpuError::InvalidInput(format!(
                "record_bytes {} must be a non-zero multiple of 4 of at most {} bytes",
                self.record_bytes,
                super::merkle::LEAF_BYTES_MAX
            )));
        }
        for (field, offset) in [
            ("public_key", self.public_key),
            ("r", self.r),
            ("s", self.s),
        ] {
            if !offset.is_multiple_of(4) || offset + 32 > self.record_bytes {
                return Err(GpuError::InvalidInput(format!(
                    "the {field} offset {offset} must be a multiple of 4 with its 32 bytes inside the {}-byte record",
                    self.record_bytes
                )));
            }
        }
        Ok(())
    }
}

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
    sub_batch_items: AtomicUsize,
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
        let pipeline = |label: &str, entry: &str, entry_wgsl: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(
                    shader_source(&format!("{VERIFY_WGSL}\n{entry_wgsl}")).into(),
                ),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
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
        for (label, entry, entry_wgsl) in [
            ("ed25519_prepare", "prepare", PREPARE_WGSL),
            ("ed25519_ladder", "ladder", LADDER_WGSL),
        ] {
            let started = Instant::now();
            let pipeline = pipeline(label, entry, entry_wgsl);
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

    /// Tests only: makes sub-batches at most `items` long (clamped to
    /// 1..=[`GPU_BATCH_ITEMS_MAX`]), so that small tests cross sub-batch boundaries.
    #[doc(hidden)]
    pub fn set_sub_batch_items(&self, items: usize) {
        self.sub_batch_items
            .store(items.clamp(1, GPU_BATCH_ITEMS_MAX), Ordering::Relaxed);
    }

    /// Tests only: arms (or clears) a fault for the next [`Self::verify_with`] call that
    /// reaches it; it fires once.
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Option<InjectedFault>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// Takes the armed fault if it matches `sub_batch` and `which`.
    fn take_fault(&self, sub_batch: usize, which: fn(&InjectedFault) -> Option<usize>) -> bool {
        let mut fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        if fault.as_ref().and_then(which) == Some(sub_batch) {
            *fault = None;
            return true;
        }
        false
    }

    /// Rebuilds all tables: the base point in slot 0, `keys[i]` in slot `i + 1`, for at most
    /// [`GPU_KEY_TABLES_MAX`] keys. The host computes the entries `j(-A)` with
    /// curve25519-dalek from its ZIP-215 decompression of each key; returns how many keys got
    /// tables.
    ///
    /// Errors: `InvalidInput` when a key is not a valid point encoding (the caller registers
    /// only keys that decompress), any error of the device.
    pub fn build_tables(&mut self, keys: &[[u8; 32]]) -> Result<usize, GpuError> {
        let key_count = keys.len().min(GPU_KEY_TABLES_MAX);
        let mut points = Vec::with_capacity(key_count + 1);
        points.push(ED25519_BASEPOINT_POINT);
        for (index, key) in keys[..key_count].iter().enumerate() {
            let point = CompressedEdwardsY(*key).decompress().ok_or_else(|| {
                GpuError::InvalidInput(format!(
                    "registered key {index} ({}) is not a point encoding",
                    hex_bytes(key)
                ))
            })?;
            points.push(-point);
        }
        let mut words = vec![0u32; points.len() * TABLE_WORDS];
        words
            .par_chunks_mut(TABLE_WORDS)
            .zip(points.par_iter())
            .try_for_each(|(table, point)| host_table(point, table))?;
        // Nothing may read the old tables while they change: wait for pending work.
        self.context.wait_idle()?;
        self.slot_count = 0;
        self.context
            .queue
            .write_buffer(&self.tables, 0, &words_to_bytes(&words));
        self.context.wait_idle()?;
        self.slot_count = points.len() as u32;
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
                if self.take_fault(turn, |fault| match fault {
                    InjectedFault::DeviceLoss { sub_batch } => Some(*sub_batch),
                    _ => None,
                }) {
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
            if self.take_fault(sub_batch, |fault| match fault {
                InjectedFault::MapFailure { sub_batch } => Some(*sub_batch),
                _ => None,
            }) {
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

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `table` (`TABLE_WORDS`) with the packed points `j P`, `j = 0..15`, each in affine
/// extended coordinates `(x, y, 1, xy)` with canonical limbs.
fn host_table(point: &EdwardsPoint, table: &mut [u32]) -> Result<(), GpuError> {
    let mut multiple = EdwardsPoint::default();
    for (j, entry) in table.chunks_exact_mut(PT_WORDS).enumerate() {
        if j > 0 {
            multiple += point;
        }
        let encoding = multiple.compress().to_bytes();
        let (x, y) = host_field::affine(&encoding).ok_or_else(|| {
            GpuError::InvalidInput(format!(
                "table entry {j} ({}) did not decompress on the host",
                hex_bytes(&encoding)
            ))
        })?;
        let coordinates = [x, y, host_field::ONE, host_field::mul(&x, &y)];
        for (words, value) in entry.chunks_exact_mut(8).zip(coordinates.iter()) {
            words.copy_from_slice(&host_field::to_words(value));
        }
    }
    Ok(())
}

/// Arithmetic mod p = 2^255 - 19 on 4 u64 limbs, canonical (< p) after every operation: just
/// enough for the host to turn a point encoding into affine coordinates for the GPU tables.
mod host_field {
    pub(super) type Fe = [u64; 4];
    const P: Fe = [
        0xffff_ffff_ffff_ffed,
        u64::MAX,
        u64::MAX,
        0x7fff_ffff_ffff_ffff,
    ];
    pub(super) const ONE: Fe = [1, 0, 0, 0];

    fn geq_p(a: &Fe) -> bool {
        for i in (0..4).rev() {
            if a[i] != P[i] {
                return a[i] > P[i];
            }
        }
        true
    }

    fn sub_p(a: &Fe) -> Fe {
        let mut out = [0u64; 4];
        let mut borrow = 0u64;
        for i in 0..4 {
            let (d1, b1) = a[i].overflowing_sub(P[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            out[i] = d2;
            borrow = u64::from(b1 || b2);
        }
        out
    }

    /// Reduces `low + 2^256 high` (high small) to canonical form.
    fn fold(low: Fe, high: u128) -> Fe {
        let mut out = low;
        // 2^256 = 38 mod p.
        let mut carry = high * 38;
        while carry != 0 {
            for limb in out.iter_mut() {
                let v = u128::from(*limb) + carry;
                *limb = v as u64;
                carry = v >> 64;
            }
            carry *= 38;
        }
        while geq_p(&out) {
            out = sub_p(&out);
        }
        out
    }

    pub(super) fn add(a: &Fe, b: &Fe) -> Fe {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let v = u128::from(a[i]) + u128::from(b[i]) + carry;
            out[i] = v as u64;
            carry = v >> 64;
        }
        fold(out, carry)
    }

    pub(super) fn neg(a: &Fe) -> Fe {
        if *a == [0; 4] {
            return *a;
        }
        let mut out = [0u64; 4];
        let mut borrow = 0u64;
        for i in 0..4 {
            let (d1, b1) = P[i].overflowing_sub(a[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            out[i] = d2;
            borrow = u64::from(b1 || b2);
        }
        out
    }

    pub(super) fn sub(a: &Fe, b: &Fe) -> Fe {
        add(a, &neg(b))
    }

    pub(super) fn mul(a: &Fe, b: &Fe) -> Fe {
        let mut t = [0u128; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let v = t[i + j] + u128::from(a[i]) * u128::from(b[j]) + carry;
                t[i + j] = u128::from(v as u64);
                carry = v >> 64;
            }
            t[i + 4] = carry;
        }
        // low + 38 high, limb by limb, then fold the last carry.
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let v = t[i] + t[i + 4] * 38 + carry;
            out[i] = v as u64;
            carry = v >> 64;
        }
        fold(out, carry)
    }

    fn pow(a: &Fe, exponent: &Fe) -> Fe {
        let mut result = ONE;
        for i in (0..256).rev() {
            result = mul(&result, &result);
            if (exponent[i / 64] >> (i % 64)) & 1 == 1 {
                result = mul(&result, a);
            }
        }
        result
    }

    fn from_u64(v: u64) -> Fe {
        [v, 0, 0, 0]
    }

    /// Edwards d = -121665/121666 and sqrt(-1) = 2^((p - 1) / 4).
    pub(super) static CONSTANTS: std::sync::LazyLock<(Fe, Fe)> = std::sync::LazyLock::new(|| {
        let p_minus_2 = sub(&[0; 4], &from_u64(2));
        let d = mul(
            &neg(&from_u64(121_665)),
            &pow(&from_u64(121_666), &p_minus_2),
        );
        let p14 = [
            0xffff_ffff_ffff_fffb,
            u64::MAX,
            u64::MAX,
            0x1fff_ffff_ffff_ffff,
        ];
        (d, pow(&from_u64(2), &p14))
    });

    /// The canonical value as 8 little-endian u32 words (the GPU's packed limbs).
    pub(super) fn to_words(a: &Fe) -> [u32; 8] {
        let mut w = [0u32; 8];
        for i in 0..4 {
            w[2 * i] = a[i] as u32;
            w[2 * i + 1] = (a[i] >> 32) as u32;
        }
        w
    }

    /// Affine (x, y) of a canonical point encoding (y < p, as curve25519-dalek's `compress`
    /// writes it); `None` when it is not a point or not canonical. x is the root whose parity
    /// is the sign bit (x = 0 only with the sign bit clear).
    pub(super) fn affine(encoding: &[u8; 32]) -> Option<(Fe, Fe)> {
        let mut y = [0u64; 4];
        for (i, limb) in y.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(encoding[8 * i..8 * i + 8].try_into().ok()?);
        }
        let sign = y[3] >> 63;
        y[3] &= 0x7fff_ffff_ffff_ffff;
        if geq_p(&y) {
            return None;
        }
        let (d, sqrt_m1) = *CONSTANTS;
        let yy = mul(&y, &y);
        let u = sub(&yy, &ONE);
        let v = add(&mul(&d, &yy), &ONE);
        // x^2 = u / v; x = u v^3 (u v^7)^((p - 5) / 8), times sqrt(-1) when that squares to -u/v.
        let v3 = mul(&mul(&v, &v), &v);
        let v7 = mul(&mul(&v3, &v3), &v);
        let p58 = [
            0xffff_ffff_ffff_fffd,
            u64::MAX,
            u64::MAX,
            0x0fff_ffff_ffff_ffff,
        ];
        let mut x = mul(&mul(&u, &v3), &pow(&mul(&u, &v7), &p58));
        let check = mul(&v, &mul(&x, &x));
        if check == neg(&u) {
            x = mul(&x, &sqrt_m1);
        } else if check != u {
            return None;
        }
        if mul(&v, &mul(&x, &x)) != u {
            return None;
        }
        if x[0] & 1 != sign {
            if x == [0; 4] {
                return None;
            }
            x = neg(&x);
        }
        Some((x, y))
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

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}

/// Runs a test kernel (`field_ops`, `point_ops`): `entry_wgsl` with the libraries, one
/// thread per case, `cases` words in, `result_words` words out.
///
/// Errors: any device error.
#[doc(hidden)]
pub fn run_test_kernel(
    context: &GpuContext,
    entry_wgsl: &str,
    entry: &str,
    cases: &[u32],
    case_count: usize,
    result_words: usize,
) -> Result<Vec<u32>, GpuError> {
    let device = &context.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(entry),
        source: wgpu::ShaderSource::Wgsl(shader_source(entry_wgsl).into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module: &module,
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

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::scalar::Scalar;

    #[test]
    fn host_constants_match_the_shader_constants() {
        let (d, sqrt_m1) = *host_field::CONSTANTS;
        // FE_D and FE_SQRT_M1 of field.wgsl, as 16-bit limbs packed two per word.
        assert_eq!(
            host_field::to_words(&d),
            [
                0x1359_78a3,
                0x75eb_4dca,
                0x4141_d8ab,
                0x0070_0a4d,
                0x7779_e898,
                0x8cc7_4079,
                0x2b6f_fe73,
                0x5203_6cee
            ]
        );
        assert_eq!(
            host_field::to_words(&sqrt_m1),
            [
                0x4a0e_a0b0,
                0xc4ee_1b27,
                0xad2f_e478,
                0x2f43_1806,
                0x3dfb_d7a7,
                0x2b4d_0099,
                0x4fc1_df0b,
                0x2b83_2480
            ]
        );
    }

    /// The host's affine coordinates re-encode to dalek's encoding and lie on the curve.
    #[test]
    fn host_affine_coordinates_match_dalek() {
        let (d, _) = *host_field::CONSTANTS;
        let mut points: Vec<EdwardsPoint> = curve25519_dalek::constants::EIGHT_TORSION.to_vec();
        for i in 1..40u64 {
            points.push(
                ED25519_BASEPOINT_POINT * Scalar::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            );
            points.push(-points[points.len() - 1]);
        }
        for point in &points {
            let encoding = point.compress().to_bytes();
            let (x, y) = host_field::affine(&encoding).expect("a dalek encoding decompresses");
            let mut words = [0u32; 8];
            bytes_to_words(&encoding, &mut words);
            let sign = words[7] >> 31;
            words[7] &= 0x7fff_ffff;
            assert_eq!(
                host_field::to_words(&y),
                words,
                "y of {}",
                hex_bytes(&encoding)
            );
            assert_eq!(
                x[0] as u32 & 1,
                sign,
                "sign of x of {}",
                hex_bytes(&encoding)
            );
            let xx = host_field::mul(&x, &x);
            let yy = host_field::mul(&y, &y);
            let left = host_field::sub(&yy, &xx);
            let right = host_field::add(
                &host_field::ONE,
                &host_field::mul(&d, &host_field::mul(&xx, &yy)),
            );
            assert_eq!(left, right, "curve equation for {}", hex_bytes(&encoding));
        }
        // Not points, or not canonical: refused.
        let mut not_canonical = [0xffu8; 32];
        not_canonical[0] = 0xee;
        not_canonical[31] = 0x7f;
        assert_eq!(host_field::affine(&not_canonical), None);
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert!(CompressedEdwardsY(not_a_point).decompress().is_none());
        assert_eq!(host_field::affine(&not_a_point), None);
    }

    #[test]
    fn host_table_entries_are_the_multiples() {
        let point = ED25519_BASEPOINT_POINT * Scalar::from(12345u64);
        let mut table = vec![0u32; TABLE_WORDS];
        host_table(&point, &mut table).unwrap();
        for j in 0..16u64 {
            let expected = (point * Scalar::from(j)).compress().to_bytes();
            let entry = &table[j as usize * PT_WORDS..(j as usize + 1) * PT_WORDS];
            let mut y = [0u32; 8];
            bytes_to_words(&expected, &mut y);
            y[7] &= 0x7fff_ffff;
            assert_eq!(&entry[8..16], &y, "y of entry {j}");
            assert_eq!(&entry[16..24], &[1, 0, 0, 0, 0, 0, 0, 0], "z of entry {j}");
        }
    }
}
