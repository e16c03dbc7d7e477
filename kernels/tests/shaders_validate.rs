//! Parses and validates with naga every shader module the kernels compile, from the one WGSL
//! loader the host uses (`tally_kernels::gpu::shader`): no GPU needed, so a plain
//! `cargo test` catches shader errors on any machine.
//!
//! Also checks the loader against the `shaders/` folder: every `.wgsl` file there (subfolders
//! included) is listed in `shader::FILES` with its current text and used by some module, and
//! the libraries a file's leading comment names (`// requires: other.wgsl`, or in prose
//! `needs field.wgsl and curve.wgsl`, paths relative to the file's folder) come before it in
//! every module that uses it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tally_kernels::gpu::shader::{self, Shader, FILES};

fn shaders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders")
}

/// Paths of the `.wgsl` files under `dir`, relative to `root`, with `/` separators.
fn wgsl_files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read shader folder {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable folder entry").path();
        if path.is_dir() {
            wgsl_files(root, &path, out);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "wgsl")
        {
            let relative = path.strip_prefix(root).expect("under the shader folder");
            let parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.insert(parts.join("/"));
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
        let start = ["requires:", "needs "]
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

#[test]
fn every_module_parses_and_validates() {
    let mut failures = Vec::new();
    for shader in Shader::ALL {
        let source = shader.source();
        let name = format!("{} ({})", shader.label(), shader.files().join(" + "));
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(module) => module,
            Err(error) => {
                failures.push(error.emit_to_string_with_path(&source, &name));
                continue;
            }
        };
        // No optional capability: the kernels use 32-bit integers only, so that every
        // adapter (WebGPU's baseline included) runs them.
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        if let Err(error) = validator.validate(&module) {
            failures.push(error.emit_to_string_with_path(&source, &name));
            continue;
        }
        let entry_points: Vec<&str> = module
            .entry_points
            .iter()
            .map(|entry| entry.name.as_str())
            .collect();
        if entry_points != [shader.entry_point()] {
            failures.push(format!(
                "{name}: entry points {entry_points:?}, the loader expects exactly [{:?}]",
                shader.entry_point()
            ));
        }
        eprintln!("ok: {name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_loader_lists_every_shader_file_as_it_is_on_disk() {
    let mut on_disk = BTreeSet::new();
    wgsl_files(&shaders_dir(), &shaders_dir(), &mut on_disk);
    assert!(
        !on_disk.is_empty(),
        "no .wgsl file found under {}",
        shaders_dir().display()
    );
    let listed: BTreeSet<String> = FILES.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "shaders/ and gpu::shader::FILES must name the same files"
    );
    for (name, source) in FILES {
        let text = std::fs::read_to_string(shaders_dir().join(name)).expect("readable shader");
        assert_eq!(
            source, text,
            "{name}: FILES holds another file's text under this name"
        );
        assert!(
            Shader::ALL
                .iter()
                .any(|shader| shader.files().contains(&name)),
            "{name} is in FILES but no module uses it"
        );
    }
}

#[test]
fn every_module_puts_the_libraries_a_file_names_before_it() {
    for shader in Shader::ALL {
        let files = shader.files();
        for (position, name) in files.iter().enumerate() {
            let source = shader::file(name).expect("listed");
            let folder = name.rsplit_once('/').map_or("", |(folder, _)| folder);
            for required in required_files(source) {
                let required = if folder.is_empty() {
                    required
                } else {
                    format!("{folder}/{required}")
                };
                if required == *name {
                    continue; // A library describing the convention with its own name.
                }
                assert!(
                    files[..position].contains(&required.as_str()),
                    "{}: {name} needs {required}, which does not come before it",
                    shader.label()
                );
            }
        }
    }
}
