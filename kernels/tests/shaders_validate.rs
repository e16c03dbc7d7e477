//! Parses and validates every WGSL file under `shaders/` (subfolders included) with naga: no
//! GPU needed, so a plain `cargo test` catches shader errors on any machine.
//!
//! Convention for shared code (WGSL has no imports): a file may start with lines
//! `// requires: other.wgsl` (path relative to the file's folder); the listed files are
//! prepended, in order, before parsing, exactly as the kernels do with `concat!`. A library
//! file (no entry point) is validated on its own too. Each file has at most one entry point.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

const REQUIRES_PREFIX: &str = "// requires:";
/// Bound on `requires` nesting: deeper than this is a cycle or a mistake.
const REQUIRES_DEPTH_MAX: usize = 8;

fn shaders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders")
}

fn wgsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read shader folder {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable folder entry").path();
        if path.is_dir() {
            wgsl_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "wgsl") {
            out.push(path);
        }
    }
}

/// The source of `path` with its `// requires:` files prepended (each once, depth-first).
fn resolve(path: &Path, seen: &mut HashSet<PathBuf>, depth: usize, out: &mut String) {
    assert!(
        depth <= REQUIRES_DEPTH_MAX,
        "{}: `requires` nested deeper than {REQUIRES_DEPTH_MAX} (a cycle?)",
        path.display()
    );
    let canonical = path
        .canonicalize()
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    if !seen.insert(canonical) {
        return;
    }
    let source = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let folder = path.parent().expect("a file has a folder");
    for line in source.lines() {
        if let Some(required) = line.trim().strip_prefix(REQUIRES_PREFIX) {
            resolve(&folder.join(required.trim()), seen, depth + 1, out);
        }
    }
    out.push_str(&source);
    out.push('\n');
}

#[test]
fn every_shader_parses_and_validates() {
    let mut files = Vec::new();
    wgsl_files(&shaders_dir(), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .wgsl file found under {}", shaders_dir().display());
    let mut failures = Vec::new();
    for file in &files {
        let mut source = String::new();
        resolve(file, &mut HashSet::new(), 0, &mut source);
        let name = file.display().to_string();
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(module) => module,
            Err(error) => {
                failures.push(error.emit_to_string_with_path(&source, &name));
                continue;
            }
        };
        // The capabilities a portable kernel may use; 64-bit integers only where the adapter
        // offers them (the kernel must then keep a 32-bit path).
        let capabilities =
            naga::valid::Capabilities::default() | naga::valid::Capabilities::SHADER_INT64;
        let mut validator =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
        if let Err(error) = validator.validate(&module) {
            failures.push(error.emit_to_string_with_path(&source, &name));
            continue;
        }
        if module.entry_points.len() > 1 {
            failures.push(format!(
                "{name}: {} entry points; keep one entry point per file",
                module.entry_points.len()
            ));
        }
        eprintln!("ok: {name} ({} entry point(s))", module.entry_points.len());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
