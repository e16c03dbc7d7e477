//! The framing Tally's append-only journals share (the node's event and tax-day journals,
//! a gateway's books): a 32-byte header of an 8-byte magic, one 64-bit word and a keyed hash
//! of both, and entries that each end in a keyed hash of all the entry's bytes before it, so
//! a torn or damaged entry is found where it begins (docs/STORAGE.md).
//!
//! `hash16` is the first 16 bytes of a BLAKE3 hash keyed by the journal's context string
//! (its name and version).

/// Bytes of a journal's header.
pub const HEADER_BYTES: usize = 32;
/// Bytes of an entry's closing hash.
pub const HASH_BYTES: usize = 16;

/// Opens the journal file `dir/name` for reading and appending, creating the directory and
/// the (empty) file where missing; an existing file is kept as it is.
pub fn open_file(dir: &std::path::Path, name: &str) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(name))
}

/// The first 16 bytes of the BLAKE3 hash of `parts`, keyed by `context`.
pub fn hash16(context: &str, parts: &[&[u8]]) -> [u8; HASH_BYTES] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; HASH_BYTES];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..HASH_BYTES]);
    out
}

/// A header: `magic | word u64 | hash16 of the 16 bytes before`.
pub fn header(magic: &[u8; 8], word: u64, context: &str) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[..8].copy_from_slice(magic);
    header[8..16].copy_from_slice(&word.to_le_bytes());
    let hash = hash16(context, &[&header[..16]]);
    header[16..].copy_from_slice(&hash);
    header
}

/// The word of a header that is whole and of `magic`, or `None`.
pub fn read_header(bytes: &[u8], magic: &[u8; 8], context: &str) -> Option<u64> {
    let word = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    (bytes.len() >= HEADER_BYTES && bytes[..HEADER_BYTES] == header(magic, word, context))
        .then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_only_whole_and_of_its_magic() {
        let bytes = header(b"TALLYXX1", 42, "ctx");
        assert_eq!(read_header(&bytes, b"TALLYXX1", "ctx"), Some(42));
        assert_eq!(read_header(&bytes, b"TALLYXX2", "ctx"), None);
        assert_eq!(read_header(&bytes, b"TALLYXX1", "other"), None);
        assert_eq!(read_header(&bytes[..20], b"TALLYXX1", "ctx"), None);
        let mut damaged = bytes;
        damaged[9] ^= 1;
        assert_eq!(read_header(&damaged, b"TALLYXX1", "ctx"), None);
        assert_ne!(hash16("a", &[b"x"]), hash16("b", &[b"x"]));
        assert_eq!(hash16("a", &[b"xy"]), hash16("a", &[b"x", b"y"]));
    }
}
