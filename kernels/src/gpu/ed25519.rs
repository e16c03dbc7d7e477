//! GPU Ed25519 verification: WGSL kernels in `shaders/ed25519/`, one thread per signature.
//!
//! The kernel makes ed25519-zebra's single-verifier check, `[8](R - (sB + k(-A))) ==
//! identity`, with ZIP-215 decompression of `R` and `A` (see docs/VERIFY_RULES.md). The host
//! checks `S < L` and computes `k = SHA-512(R || A || M) mod L` (rayon) while the GPU works on
//! the previous sub-batch. Field elements are 16 limbs of 16 bits in u32 (representation and
//! bounds are documented in `shaders/ed25519/field.wgsl`): no 64-bit integers needed.
//!
//! Tables of `j P`, `j = 0..15`, live in one storage buffer: slot 0 is the base point, slot
//! `i + 1` registered key `i` (built on the GPU by the `key_tables` kernel at registration).
//! Unregistered keys are decompressed and tabulated per thread.
//!
//! Buffers are allocated once in [`GpuEd25519::new`]: two sets (items, verdicts, readback,
//! params) of [`GPU_BATCH_ITEMS_MAX`] items, used in turn, so that the host prepares and
//! uploads sub-batch N+1 while the GPU computes sub-batch N.

use super::{GpuContext, GpuError};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Field arithmetic library (no entry point).
pub const FIELD_WGSL: &str = include_str!("../../../shaders/ed25519/field.wgsl");
/// Point arithmetic and decompression library (no entry point).
pub const CURVE_WGSL: &str = include_str!("../../../shaders/ed25519/curve.wgsl");
/// Entry point `verify`.
pub const VERIFY_WGSL: &str = include_str!("../../../shaders/ed25519/verify.wgsl");
/// Entry point `key_tables`.
pub const KEY_TABLES_WGSL: &str = include_str!("../../../shaders/ed25519/key_tables.wgsl");
/// Test entry point `field_ops`.
pub const FIELD_TEST_WGSL: &str = include_str!("../../../shaders/ed25519/field_test.wgsl");
/// Test entry point `point_ops`.
pub const POINT_TEST_WGSL: &str = include_str!("../../../shaders/ed25519/point_test.wgsl");

/// u32 words per item in the upload buffer (layout in `verify.wgsl`).
pub const ITEM_WORDS: usize = 33;
/// Key slot value: the kernel decompresses `A` itself.
pub const KEY_DECOMPRESS: u32 = u32::MAX;
/// Key slot value: the item is already invalid (`S >= L`), the kernel writes false.
pub const KEY_SKIP: u32 = u32::MAX - 1;
/// Most items per dispatch (per upload buffer): 2.1 MB of items per buffer.
pub const GPU_BATCH_ITEMS_MAX: usize = 16384;
/// Most registered keys with GPU tables (4 KiB each); further keys are decompressed per item.
pub const GPU_KEY_TABLES_MAX: usize = 4096;

const WORKGROUP_ITEMS: usize = 64;
const TABLE_SLOT_WORDS: usize = 1024;
const TABLE_SLOT_BYTES: u64 = (TABLE_SLOT_WORDS * 4) as u64;
const TABLE_SLOTS_MAX: usize = 1 + GPU_KEY_TABLES_MAX;
const PARAMS_BYTES: u64 = 16;

/// The encoding of -B (the base point with the sign bit set): the `key_tables` kernel
/// tabulates j(-P), so slot 0 built from -B holds jB.
const MINUS_BASEPOINT_BYTES: [u8; 32] = {
    let mut bytes = curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.to_bytes();
    bytes[31] |= 0x80;
    bytes
};

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

/// Packs one item: `r`, `a` (encodings as given), `s` and `k` (scalar bytes), `slot`
/// (a table slot, [`KEY_DECOMPRESS`] or [`KEY_SKIP`]) into `words` (`ITEM_WORDS` long).
pub fn pack_item(
    r: &[u8; 32],
    a: &[u8; 32],
    s: &[u8; 32],
    k: &[u8; 32],
    slot: u32,
    words: &mut [u32],
) {
    assert_eq!(words.len(), ITEM_WORDS);
    bytes_to_words(r, &mut words[0..8]);
    bytes_to_words(a, &mut words[8..16]);
    bytes_to_words(s, &mut words[16..24]);
    bytes_to_words(k, &mut words[24..32]);
    words[32] = slot;
}

struct Slot {
    items: wgpu::Buffer,
    verdicts: wgpu::Buffer,
    readback: wgpu::Buffer,
    params: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// Host staging, reused across calls.
struct Staging {
    words: Vec<u32>,
}

/// The GPU verifier: pipelines and buffers on one [`GpuContext`].
pub struct GpuEd25519 {
    context: Arc<GpuContext>,
    verify_pipeline: wgpu::ComputePipeline,
    key_pipeline: wgpu::ComputePipeline,
    tables: wgpu::Buffer,
    /// Filled table slots (1 + registered keys with tables).
    slot_count: u32,
    slots: [Slot; 2],
    staging: Mutex<Staging>,
}

impl GpuEd25519 {
    /// Compiles the kernels, allocates every buffer, and tabulates the base point.
    ///
    /// Errors: `TooLarge` when the adapter's storage limits are below the fixed buffer sizes,
    /// `Validation`/`DeviceLost` when the device rejects a kernel or is lost.
    pub fn new(context: Arc<GpuContext>) -> Result<GpuEd25519, GpuError> {
        let device = &context.device;
        let items_bytes = (GPU_BATCH_ITEMS_MAX * ITEM_WORDS * 4) as u64;
        let tables_bytes = TABLE_SLOTS_MAX as u64 * TABLE_SLOT_BYTES;
        let limit = context
            .limits
            .max_storage_buffer_binding_size
            .min(context.limits.max_buffer_size);
        for (what, needed_bytes) in [
            ("the ed25519 item buffer", items_bytes),
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
        let pipeline = |label: &str, entry_wgsl: &str, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(shader_source(entry_wgsl).into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let verify_pipeline = pipeline("ed25519_verify", VERIFY_WGSL, "verify");
        let key_pipeline = pipeline("ed25519_key_tables", KEY_TABLES_WGSL, "key_tables");
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
                PARAMS_BYTES,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("ed25519_verify"),
                layout: &verify_pipeline.get_bind_group_layout(0),
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
                        resource: verdicts.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: params.as_entire_binding(),
                    },
                ],
            });
            Slot {
                items,
                verdicts,
                readback,
                params,
                bind_group,
            }
        };
        let slots = [make_slot(), make_slot()];
        context.check_health()?;
        let mut gpu = GpuEd25519 {
            context,
            verify_pipeline,
            key_pipeline,
            tables,
            slot_count: 0,
            slots,
            staging: Mutex::new(Staging {
                words: Vec::with_capacity(GPU_BATCH_ITEMS_MAX * ITEM_WORDS),
            }),
        };
        gpu.build_tables(&[])?;
        Ok(gpu)
    }

    /// The context this verifier runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.context
    }

    /// Rebuilds all tables: the base point in slot 0, `keys[i]` in slot `i + 1`, for at most
    /// [`GPU_KEY_TABLES_MAX`] keys. Every key must be a valid point encoding (the caller
    /// registers only keys its CPU decompression accepted); returns how many keys got tables.
    ///
    /// Errors: `Validation` when the kernel's decompression rejects a key the CPU accepted
    /// (a bug: the GPU must not be used for verdicts then), any error of the device.
    pub fn build_tables(&mut self, keys: &[[u8; 32]]) -> Result<usize, GpuError> {
        let key_count = keys.len().min(GPU_KEY_TABLES_MAX);
        let slot_count = key_count + 1;
        let device = &self.context.device;
        let mut key_words = vec![0u32; slot_count * 8];
        bytes_to_words(&MINUS_BASEPOINT_BYTES, &mut key_words[0..8]);
        for (i, key) in keys[..key_count].iter().enumerate() {
            bytes_to_words(key, &mut key_words[(i + 1) * 8..(i + 2) * 8]);
        }
        let keys_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ed25519_keys"),
            size: (key_words.len() * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.context
            .queue
            .write_buffer(&keys_buffer, 0, &words_to_bytes(&key_words));
        let valid_bytes = (slot_count * 4) as u64;
        let valid = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ed25519_key_valid"),
            size: valid_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ed25519_key_valid_readback"),
            size: valid_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ed25519_key_params"),
            size: PARAMS_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.context
            .queue
            .write_buffer(&params, 0, &words_to_bytes(&[slot_count as u32, 0, 0, 0]));
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("ed25519_key_tables"),
            layout: &self.key_pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: keys_buffer.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: self.tables.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: valid.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: params.as_entire_binding(),
                },
            ],
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("ed25519_key_tables"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("ed25519_key_tables"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.key_pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(slot_count.div_ceil(WORKGROUP_ITEMS) as u32, 1, 1);
        }
        encoder.copy_buffer_to_buffer(&valid, 0, &readback, 0, valid_bytes);
        self.context.queue.submit([encoder.finish()]);
        let flags = self.context.read_buffer(&readback, valid_bytes)?;
        self.slot_count = 0;
        for (slot, flag) in flags.chunks_exact(4).enumerate() {
            if flag != [1, 0, 0, 0] {
                return Err(GpuError::Validation(format!(
                    "the GPU rejected key slot {slot} that the CPU decompressed; GPU verdicts would disagree with the reference"
                )));
            }
        }
        self.slot_count = slot_count as u32;
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
        assert_eq!(verdicts.len(), item_count);
        let mut staging = self
            .staging
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pending: Option<(usize, Range<usize>, wgpu::SubmissionIndex)> = None;
        let mut start = 0;
        let mut turn = 0;
        while start < item_count || pending.is_some() {
            let mut submitted = None;
            if start < item_count {
                let range = start..(start + GPU_BATCH_ITEMS_MAX).min(item_count);
                let slot = &self.slots[turn % 2];
                staging.words.clear();
                staging.words.resize(range.len() * ITEM_WORDS, 0);
                pack(range.clone(), &mut staging.words);
                self.context
                    .queue
                    .write_buffer(&slot.items, 0, &words_to_bytes(&staging.words));
                let params = [range.len() as u32, self.slot_count, 0, 0];
                self.context
                    .queue
                    .write_buffer(&slot.params, 0, &words_to_bytes(&params));
                let mut encoder =
                    self.context
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("ed25519_verify"),
                        });
                // Zero the verdicts: the kernel writes 1 (valid) or 2 (invalid), so a 0 read back
                // means an item the kernel never reached.
                encoder.clear_buffer(&slot.verdicts, 0, Some((range.len() * 4) as u64));
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("ed25519_verify"),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&self.verify_pipeline);
                    pass.set_bind_group(0, &slot.bind_group, &[]);
                    pass.dispatch_workgroups(range.len().div_ceil(WORKGROUP_ITEMS) as u32, 1, 1);
                }
                encoder.copy_buffer_to_buffer(
                    &slot.verdicts,
                    0,
                    &slot.readback,
                    0,
                    (range.len() * 4) as u64,
                );
                let index = self.context.queue.submit([encoder.finish()]);
                submitted = Some((turn % 2, range.clone(), index));
                start = range.end;
                turn += 1;
            }
            if let Some((slot_index, range, index)) = pending.take() {
                self.read_verdicts(
                    &self.slots[slot_index],
                    range.clone(),
                    index,
                    &mut verdicts[range],
                )?;
            }
            pending = submitted;
            if start >= item_count {
                if let Some((slot_index, range, index)) = pending.take() {
                    self.read_verdicts(
                        &self.slots[slot_index],
                        range.clone(),
                        index,
                        &mut verdicts[range],
                    )?;
                }
            }
        }
        Ok(())
    }

    fn read_verdicts(
        &self,
        slot: &Slot,
        range: Range<usize>,
        index: wgpu::SubmissionIndex,
        verdicts: &mut [bool],
    ) -> Result<(), GpuError> {
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
            let view = slice
                .get_mapped_range()
                .map_err(|error| GpuError::Map(error.to_string()))?;
            for (verdict, word) in verdicts.iter_mut().zip(view.chunks_exact(4)) {
                match word {
                    [1, 0, 0, 0] => *verdict = true,
                    [2, 0, 0, 0] => *verdict = false,
                    _ => return Err(GpuError::Validation(format!(
                        "verdict word {word:?} is neither 1 (valid) nor 2 (invalid): the kernel skipped an item"
                    ))),
                }
            }
            Ok(())
        })();
        slot.readback.unmap();
        result
    }
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
