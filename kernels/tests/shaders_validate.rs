//! Parses and validates every WGSL file under `shaders/` (subfolders included) with naga: no
//! GPU needed, so a plain `cargo test` catches shader errors on any machine.
//!
//! Convention for shared code (WGSL has no imports): the leading comment block of a file
//! names the library files it needs, either as `// requires: other.wgsl` or in prose as
//! `needs field.wgsl and curve.wgsl` (paths relative to the file's folder). Those files are
//! prepended, in the order named and each once, before parsing, as the kernels do on the
//! host. A library file (no entry point) is validated on its own too. Each file has at most
//! one entry point.

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
        } else if path
            .extension()
            .is_some_and(|extension| extension == "wgsl")
        {
            out.push(path);
        }
    }
}

/// The `.wgsl` names after `requires:` or `needs` in the leading comment block, in order.
fn required_files(source: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in source.lines() {
        let Some(comment) = line.trim().strip_prefix("//") else {
            if line.trim().is_empty() {
                continue;
            }
            break; // The leading comment block has ended.
        };
        let lower = comment.to_ascii_lowercase();
        let start = [REQUIRES_PREFIX.trim_start_matches("//").trim(), "needs "]
            .iter()
            .filter_map(|marker| lower.find(marker))
            .min();
        let Some(start) = start else { continue };
        for word in comment[start..].split(|c: char| c.is_whitespace() || c == ',') {
            // Names end in "wgsl"; drop the punctuation of the prose around them.
            let word = word
                .trim_end_matches(|c: char| !c.is_alphanumeric())
                .trim_start_matches(|c: char| !(c.is_alphanumeric() || "._".contains(c)));
            if word.ends_with(".wgsl") && !files.iter().any(|file| file == word) {
                files.push(word.to_owned());
            }
        }
    }
    files
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
    for required in required_files(&source) {
        resolve(&folder.join(required), seen, depth + 1, out);
    }
    out.push_str(&source);
    out.push('\n');
}

#[test]
fn every_shader_parses_and_validates() {
    let mut files = Vec::new();
    wgsl_files(&shaders_dir(), &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no .wgsl file found under {}",
        shaders_dir().display()
    );
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
