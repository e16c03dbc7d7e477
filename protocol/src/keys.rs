//! Key files: an Ed25519 signing key stored as TOML, readable by its owner only.

use ed25519_zebra::{SigningKey, VerificationKey};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors reading or writing a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} already exists: refusing to overwrite a key (remove it first)")]
    Exists { path: PathBuf },
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is readable by others (mode {mode:o}): run `chmod 600` on it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a valid key file: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    /// 32-byte Ed25519 seed, hex.
    secret_key: String,
    /// 32-byte compressed public key, hex (checked against the seed on load).
    public_key: String,
}

/// Makes a new signing key from the operating system's randomness.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    SigningKey::from(seed)
}

/// Public key bytes of a signing key.
pub fn public_key_of(key: &SigningKey) -> [u8; 32] {
    VerificationKey::from(key).into()
}

/// Writes `key` to a new file at `path` with mode 0600. Refuses to overwrite.
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let file = KeyFile {
        secret_key: hex::encode(key.as_ref()),
        public_key: hex::encode(public_key_of(key)),
    };
    let text = toml::to_string(&file).expect("a key file always serialises");
    let mut handle = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_path_buf(),
            },
            _ => KeyError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;
    handle
        .write_all(text.as_bytes())
        .and_then(|()| handle.sync_all())
        .map_err(|source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a key file written by [`write_key_file`]; refuses one that others can read.
pub fn read_key_file(path: &Path) -> Result<SigningKey, KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_error)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let malformed = |reason: String| KeyError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let file: KeyFile = toml::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    let seed: [u8; 32] = decode_hex32(&file.secret_key)
        .map_err(|reason| malformed(format!("secret_key: {reason}")))?;
    let key = SigningKey::from(seed);
    let public = decode_hex32(&file.public_key)
        .map_err(|reason| malformed(format!("public_key: {reason}")))?;
    if public != public_key_of(&key) {
        return Err(malformed(
            "public_key does not belong to secret_key".to_string(),
        ));
    }
    Ok(key)
}

/// Decodes exactly 32 bytes of hex.
pub fn decode_hex32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text).map_err(|e| format!("not hex ({e})"))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("expected 32 bytes (64 hex digits), got {}", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.key");
        let key = generate_key();
        write_key_file(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = read_key_file(&path).unwrap();
        assert_eq!(public_key_of(&loaded), public_key_of(&key));
        assert!(matches!(
            write_key_file(&path, &key),
            Err(KeyError::Exists { .. })
        ));
    }

    #[test]
    fn bad_key_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_key_file(&path, &generate_key()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_key_file(&path),
            Err(KeyError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "secret_key = \"zz\"\npublic_key = \"00\"\n").unwrap();
        let error = read_key_file(&path).unwrap_err().to_string();
        assert!(error.contains("secret_key: not hex"), "{error}");
        // a public key that is not the seed's
        let other = generate_key();
        let text = format!(
            "secret_key = \"{}\"\npublic_key = \"{}\"\n",
            hex::encode(generate_key().as_ref()),
            hex::encode(public_key_of(&other))
        );
        std::fs::write(&path, text).unwrap();
        let error = read_key_file(&path).unwrap_err().to_string();
        assert!(error.contains("does not belong"), "{error}");
    }
}
