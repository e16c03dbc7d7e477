//! The one WGSL loader: every file of `shaders/` by name (compiled in with `include_str!`),
//! and every shader module a kernel compiles, as the files it joins in order. WGSL has no
//! imports: a module is its library files (no entry point) followed by its entry file.
//!
//! The host builds every pipeline from [`Shader::source`] (through `Shader::module`), and the
//! naga test (`kernels/tests/shaders_validate.rs`) validates each of [`Shader::ALL`] from the
//! same source, so what the test checks is what the GPU compiles. That test also checks that
//! every `.wgsl` file under `shaders/` is in [`FILES`] and used by some [`Shader`], and that
//! each file's leading `// requires:` or `Needs …` comment names only files that come before
//! it in every module that uses it.

/// Every WGSL file under `shaders/`: its path there and its source.
pub const FILES: [(&str, &str); 10] = [
    (
        "blake3_common.wgsl",
        include_str!("../../../shaders/blake3_common.wgsl"),
    ),
    (
        "blake3_leaves.wgsl",
        include_str!("../../../shaders/blake3_leaves.wgsl"),
    ),
    (
        "blake3_nodes.wgsl",
        include_str!("../../../shaders/blake3_nodes.wgsl"),
    ),
    (
        "ed25519/field.wgsl",
        include_str!("../../../shaders/ed25519/field.wgsl"),
    ),
    (
        "ed25519/curve.wgsl",
        include_str!("../../../shaders/ed25519/curve.wgsl"),
    ),
    (
        "ed25519/verify.wgsl",
        include_str!("../../../shaders/ed25519/verify.wgsl"),
    ),
    (
        "ed25519/prepare.wgsl",
        include_str!("../../../shaders/ed25519/prepare.wgsl"),
    ),
    (
        "ed25519/ladder.wgsl",
        include_str!("../../../shaders/ed25519/ladder.wgsl"),
    ),
    (
        "ed25519/field_test.wgsl",
        include_str!("../../../shaders/ed25519/field_test.wgsl"),
    ),
    (
        "ed25519/point_test.wgsl",
        include_str!("../../../shaders/ed25519/point_test.wgsl"),
    ),
];

/// The source of a file of `shaders/` by its path there (`"ed25519/field.wgsl"`); `None` when
/// [`FILES`] does not list it.
pub fn file(name: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(path, _)| *path == name)
        .map(|(_, source)| *source)
}

/// A shader module a kernel compiles: one entry point and the files before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shader {
    /// `hash_leaves`: keyed BLAKE3 of each leaf (`crate::merkle::gpu`).
    Blake3Leaves,
    /// `hash_nodes`: one Merkle level (`crate::merkle::gpu`).
    Blake3Nodes,
    /// `prepare`: decompresses R and A (`crate::sigverify::gpu`).
    Ed25519Prepare,
    /// `ladder`: a range of the point additions of the check (`crate::sigverify::gpu`).
    Ed25519Ladder,
    /// `field_ops`: the field arithmetic, for the tests against a reference.
    Ed25519FieldTest,
    /// `point_ops`: the point arithmetic, for the tests against curve25519-dalek.
    Ed25519PointTest,
}

impl Shader {
    /// Every module, each once.
    pub const ALL: [Shader; 6] = [
        Shader::Blake3Leaves,
        Shader::Blake3Nodes,
        Shader::Ed25519Prepare,
        Shader::Ed25519Ladder,
        Shader::Ed25519FieldTest,
        Shader::Ed25519PointTest,
    ];

    /// Label of the module and its pipeline (logs, compile times, wgpu errors).
    pub fn label(self) -> &'static str {
        match self {
            Shader::Blake3Leaves => "blake3_leaves",
            Shader::Blake3Nodes => "blake3_nodes",
            Shader::Ed25519Prepare => "ed25519_prepare",
            Shader::Ed25519Ladder => "ed25519_ladder",
            Shader::Ed25519FieldTest => "ed25519_field_test",
            Shader::Ed25519PointTest => "ed25519_point_test",
        }
    }

    /// Name of the module's one entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            Shader::Blake3Leaves => "hash_leaves",
            Shader::Blake3Nodes => "hash_nodes",
            Shader::Ed25519Prepare => "prepare",
            Shader::Ed25519Ladder => "ladder",
            Shader::Ed25519FieldTest => "field_ops",
            Shader::Ed25519PointTest => "point_ops",
        }
    }

    /// The files of [`FILES`] the module joins, in order: libraries first, the entry file
    /// last.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Shader::Blake3Leaves => &["blake3_common.wgsl", "blake3_leaves.wgsl"],
            Shader::Blake3Nodes => &["blake3_common.wgsl", "blake3_nodes.wgsl"],
            Shader::Ed25519Prepare => &[
                "ed25519/field.wgsl",
                "ed25519/curve.wgsl",
                "ed25519/verify.wgsl",
                "ed25519/prepare.wgsl",
            ],
            Shader::Ed25519Ladder => &[
                "ed25519/field.wgsl",
                "ed25519/curve.wgsl",
                "ed25519/verify.wgsl",
                "ed25519/ladder.wgsl",
            ],
            Shader::Ed25519FieldTest => &[
                "ed25519/field.wgsl",
                "ed25519/curve.wgsl",
                "ed25519/field_test.wgsl",
            ],
            Shader::Ed25519PointTest => &[
                "ed25519/field.wgsl",
                "ed25519/curve.wgsl",
                "ed25519/point_test.wgsl",
            ],
        }
    }

    /// The module's WGSL: its files joined with a newline between them.
    ///
    /// Panics if a name of [`Self::files`] is not in [`FILES`] (a bug this module's tests
    /// catch).
    pub fn source(self) -> String {
        let files: Vec<&str> = self
            .files()
            .iter()
            .map(|name| file(name).unwrap_or_else(|| panic!("{name} is not in shader::FILES")))
            .collect();
        files.join("\n")
    }

    /// The module compiled on `device` (errors surface as the device's uncaptured errors).
    pub(crate) fn module(self, device: &wgpu::Device) -> wgpu::ShaderModule {
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(self.label()),
            source: wgpu::ShaderSource::Wgsl(self.source().into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_names_listed_files_and_every_file_is_used() {
        for shader in Shader::ALL {
            assert!(!shader.source().is_empty());
        }
        for (name, _) in FILES {
            assert!(
                Shader::ALL
                    .iter()
                    .any(|shader| shader.files().contains(&name)),
                "{name} is in FILES but no Shader uses it"
            );
        }
    }
}
