//! Helpers shared by the whole-system tests: run the built `tally` binary and read what it
//! printed.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The `tally` binary of this build.
pub fn tally() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tally"))
}

/// Runs `tally` with `args` to the end.
pub fn run(args: &[&str]) -> Output {
    tally().args(args).output().expect("the tally binary runs")
}

/// Standard output and standard error together, for assertions and failure messages.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
