//! A block on the GPU with one upload: the signatures of its records and the Merkle root of
//! the records as leaves (docs/MERKLE.md, "Shared upload").
//!
//! The records (fixed-size, each holding a public key A and a signature R || S at fixed
//! offsets) are written once into the Merkle backend's leaf buffer; the leaf-hash pipeline
//! reads them there as leaves and the signature pipelines read R, A and s there too
//! ([`GpuEd25519::verify_records`]). Per item, the host uploads only the challenge k and the
//! key slot (36 bytes), prepared as the signature verifier prepares them (`S < L`, registered
//! key or decompression on the GPU). A 192-byte record thus costs 228 uploaded bytes instead
//! of 324 with separate calls (192 for the tree, 132 for the packed signature item).
//!
//! Blocks whose records need more than one upload piece (256 MiB or the adapter's binding
//! limit) fall back to the separate calls: the same answers, both uploads.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use super::{GpuContext, GpuError};
use crate::merkle::gpu::{GpuMerkle, LEAF_BYTES_MAX};
use crate::merkle::{empty_root, Hash};
use crate::sigverify::gpu::{GpuEd25519, HostKeys, ITEM_WORDS, KEY_ITEM_WORDS};
use crate::sigverify::{items_of, known_answer_cases, verify_single, SigItem};

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
    /// record, at most [`LEAF_BYTES_MAX`] bytes per record (the GPU Merkle leaf limit).
    ///
    /// Errors: `InvalidInput` naming the first offending field.
    pub fn check(&self) -> Result<(), GpuError> {
        if self.record_bytes == 0
            || !self.record_bytes.is_multiple_of(4)
            || self.record_bytes > LEAF_BYTES_MAX
        {
            return Err(GpuError::InvalidInput(format!(
                "record_bytes {} must be a non-zero multiple of 4 of at most {} bytes",
                self.record_bytes, LEAF_BYTES_MAX
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

/// Bytes one [`GpuBlock::verify_and_root`] call wrote to the GPU (the per-dispatch
/// parameters, a few hundred bytes per call, are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadBytes {
    /// The records (the Merkle leaves; with a shared upload, also R, A, s).
    pub records: u64,
    /// The per-item signature words: k and key slot (36 bytes) with a shared upload, the
    /// packed item (132 bytes) otherwise.
    pub signatures: u64,
}

impl UploadBytes {
    /// Both together.
    pub fn total(&self) -> u64 {
        self.records + self.signatures
    }
}

/// The root of a [`GpuBlock::verify_and_root`] call and what the call did.
#[derive(Debug)]
pub struct BlockRun {
    /// The Merkle root of the records as leaves (`crate::merkle::root(records, record_bytes)`).
    pub root: Hash,
    /// Bytes written to the GPU.
    pub upload: UploadBytes,
    /// Whether the records were uploaded once for both kernels (false: separate uploads were
    /// asked for or the block needed more than one upload piece, or the GPU failed). True
    /// for an empty block (nothing uploaded).
    pub shared_upload: bool,
    /// The GPU failure that made this call verify and hash on the CPU, if any.
    pub fallback: Option<GpuError>,
}

/// The signature verifier and the Merkle backend on one context, sharing the records' upload.
pub struct GpuBlock {
    ed25519: GpuEd25519,
    merkle: GpuMerkle,
    keys: HostKeys,
}

impl GpuBlock {
    /// Builds both backends on `context` (compiling their pipelines) and runs the
    /// known-answer cases through the shared path: every verdict must equal the reference
    /// rule and the root the CPU root, else the kernels are refused.
    ///
    /// Errors: those of [`GpuEd25519::new`] and [`GpuMerkle::new`]; `Validation` when the
    /// known-answer check disagrees.
    pub fn new(context: Arc<GpuContext>) -> Result<GpuBlock, GpuError> {
        let merkle = GpuMerkle::new(context.clone())?;
        let ed25519 = GpuEd25519::new(context)?;
        let mut block = GpuBlock {
            ed25519,
            merkle,
            keys: HostKeys::new(),
        };
        block.known_answers()?;
        Ok(block)
    }

    /// The known-answer cases as 192-byte records (body, A, R, S at the transaction record's
    /// offsets), through the shared path.
    fn known_answers(&mut self) -> Result<(), GpuError> {
        const LAYOUT: RecordLayout = RecordLayout {
            record_bytes: 192,
            public_key: 96,
            r: 128,
            s: 160,
        };
        let cases = known_answer_cases();
        let items = items_of(&cases);
        let mut records = vec![0u8; items.len() * LAYOUT.record_bytes];
        for (record, item) in records.chunks_exact_mut(LAYOUT.record_bytes).zip(&items) {
            let body = item.message.len().min(LAYOUT.public_key);
            record[..body].copy_from_slice(&item.message[..body]);
            record[96..128].copy_from_slice(item.public_key);
            record[128..192].copy_from_slice(item.signature);
        }
        let mut verdicts = vec![false; items.len()];
        let run = self.verify_and_root(&records, &LAYOUT, &items, &mut verdicts)?;
        if let Some(error) = run.fallback {
            return Err(error);
        }
        for (index, (item, verdict)) in items.iter().zip(&verdicts).enumerate() {
            if *verdict != verify_single(item) {
                return Err(GpuError::Validation(format!(
                    "the shared-upload signature kernels disagree with the reference rule on known-answer case {index}"
                )));
            }
        }
        if run.root != crate::merkle::root(&records, LAYOUT.record_bytes) {
            return Err(GpuError::Validation(
                "the shared-upload Merkle root of the known-answer records differs from the CPU root"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The context both backends run on.
    pub fn context(&self) -> &Arc<GpuContext> {
        self.ed25519.context()
    }

    /// Registers keys that sign many items, as `Verifier::register_keys`: the GPU gets their
    /// tables (at most `GPU_KEY_TABLES_MAX`). Verdicts never depend on registration.
    ///
    /// Errors: those of [`GpuEd25519::build_tables`] (the keys then verify without tables).
    pub fn register_keys(&mut self, keys: &[[u8; 32]]) -> Result<usize, GpuError> {
        self.keys.register(keys, &mut self.ed25519)
    }

    /// The signature kernels (feature `testing`: fault injection, sub-batch size, separate
    /// calls).
    #[cfg(feature = "testing")]
    pub fn ed25519(&self) -> &GpuEd25519 {
        &self.ed25519
    }

    /// The Merkle backend (feature `testing`: separate calls).
    #[cfg(feature = "testing")]
    pub fn merkle(&mut self) -> &mut GpuMerkle {
        &mut self.merkle
    }

    /// Verifies the signatures of a block and computes the Merkle root of its records.
    ///
    /// `records` holds whole records laid out as `layout` says; `items[i]` is record `i`'s
    /// signature item: its public key and signature must be the record's bytes at the
    /// layout's offsets (the message is the caller's, e.g. a domain tag and the record's
    /// body). `verdicts[i]` gets item `i`'s verdict under the reference rule (as
    /// `sigverify::verify_single`); the returned root is `merkle::root(records,
    /// layout.record_bytes)`.
    ///
    /// A GPU failure (device lost, mapping failed, kernel error) does not fail the call: the
    /// block is verified and hashed on the CPU and [`BlockRun::fallback`] says why.
    ///
    /// Errors: `InvalidInput` when the layout is bad, `records` is not whole records, or the
    /// items do not match the records (count or bytes).
    pub fn verify_and_root(
        &mut self,
        records: &[u8],
        layout: &RecordLayout,
        items: &[SigItem<'_>],
        verdicts: &mut [bool],
    ) -> Result<BlockRun, GpuError> {
        self.run(records, layout, items, verdicts, true)
    }

    /// The same answers as [`Self::verify_and_root`] from separate uploads: the records for
    /// the tree ([`GpuMerkle::root`]), packed items for the signatures
    /// ([`GpuEd25519::verify_with`]). For comparisons (benchmarks, tests); blocks above one
    /// upload piece take this path anyway.
    ///
    /// Errors: as [`Self::verify_and_root`].
    pub fn verify_and_root_separately(
        &mut self,
        records: &[u8],
        layout: &RecordLayout,
        items: &[SigItem<'_>],
        verdicts: &mut [bool],
    ) -> Result<BlockRun, GpuError> {
        self.run(records, layout, items, verdicts, false)
    }

    fn run(
        &mut self,
        records: &[u8],
        layout: &RecordLayout,
        items: &[SigItem<'_>],
        verdicts: &mut [bool],
        share: bool,
    ) -> Result<BlockRun, GpuError> {
        layout.check()?;
        check_items(records, layout, items)?;
        assert_eq!(verdicts.len(), items.len(), "one verdict slot per item");
        if items.is_empty() {
            return Ok(BlockRun {
                root: empty_root(),
                upload: UploadBytes::default(),
                shared_upload: true,
                fallback: None,
            });
        }
        self.ed25519.clear_upload_bytes();
        let attempt = self.gpu_run(records, layout, items, verdicts, share);
        let upload = UploadBytes {
            records: self.merkle.last_upload_bytes(),
            signatures: self.ed25519.last_upload_bytes(),
        };
        match attempt {
            Ok((root, shared_upload)) => Ok(BlockRun {
                root,
                upload,
                shared_upload,
                fallback: None,
            }),
            Err(error) => {
                tracing::warn!(%error, items = items.len(), "GPU block failed, verified and hashed on the CPU");
                self.keys.verify_cpu(items, verdicts);
                Ok(BlockRun {
                    root: crate::merkle::root(records, layout.record_bytes),
                    upload,
                    shared_upload: false,
                    fallback: Some(error),
                })
            }
        }
    }

    /// The GPU part of [`Self::run`]: the root, and whether the upload was shared.
    fn gpu_run(
        &mut self,
        records: &[u8],
        layout: &RecordLayout,
        items: &[SigItem<'_>],
        verdicts: &mut [bool],
        share: bool,
    ) -> Result<(Hash, bool), GpuError> {
        let keys = &self.keys;
        if !share || !self.merkle.stage_leaves(records, layout.record_bytes)? {
            // Asked for, or too large for one piece: separate uploads.
            let root = self.merkle.root(records, layout.record_bytes)?;
            let pack = |range: Range<usize>, words: &mut [u32]| {
                items[range]
                    .par_iter()
                    .zip(words.par_chunks_mut(ITEM_WORDS))
                    .for_each(|(item, words)| keys.packed_words(item, words));
            };
            self.ed25519.verify_with(items.len(), pack, verdicts)?;
            return Ok((root, false));
        }
        // The tree first (cheap), read back after the signatures.
        let readback = self
            .merkle
            .submit_staged_root(layout.record_bytes, items.len())?;
        let fill = |range: Range<usize>, words: &mut [u32]| {
            items[range]
                .par_iter()
                .zip(words.par_chunks_mut(KEY_ITEM_WORDS))
                .for_each(|(item, words)| keys.key_words(item, words));
        };
        self.ed25519.verify_records(
            self.merkle.data_buffer(),
            layout,
            items.len(),
            fill,
            verdicts,
        )?;
        Ok((self.merkle.finish_root(readback)?, true))
    }
}

/// Checks that `records` holds `items.len()` whole records and that each item's public key
/// and signature are its record's bytes (the GPU reads them there, the host hashes k over
/// the item's: they must be the same bytes).
fn check_items(
    records: &[u8],
    layout: &RecordLayout,
    items: &[SigItem<'_>],
) -> Result<(), GpuError> {
    if !records.len().is_multiple_of(layout.record_bytes) {
        return Err(GpuError::InvalidInput(format!(
            "{} bytes of records are not whole {}-byte records",
            records.len(),
            layout.record_bytes
        )));
    }
    let record_count = records.len() / layout.record_bytes;
    if record_count != items.len() {
        return Err(GpuError::InvalidInput(format!(
            "{record_count} records but {} signature items: one item per record",
            items.len()
        )));
    }
    let mismatch = records
        .par_chunks_exact(layout.record_bytes)
        .zip(items.par_iter())
        .position_first(|(record, item)| {
            record[layout.public_key..layout.public_key + 32] != item.public_key[..]
                || record[layout.r..layout.r + 32] != item.signature[..32]
                || record[layout.s..layout.s + 32] != item.signature[32..]
        });
    match mismatch {
        Some(index) => Err(GpuError::InvalidInput(format!(
            "signature item {index}: its public key or signature differs from record {index}'s bytes at the layout's offsets"
        ))),
        None => Ok(()),
    }
}
