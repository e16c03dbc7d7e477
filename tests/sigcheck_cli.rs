//! `tally sigcheck`: one verdict line per input line, in order; a malformed line gets an
//! error naming its line number and the rest still run. Every backend answers the same.

use std::process::Command;

/// RFC 8032, section 7.1, test 1 (empty message).
const PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

fn sigcheck(backend: &str, input: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["sigcheck", "--backend", backend, input.to_str().unwrap()])
        .output()
        .expect("the tally binary runs")
}

#[test]
fn sigcheck_answers_every_line_in_order_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sigs.jsonl");
    let mut flipped = hex::decode(SIG).unwrap();
    flipped[0] ^= 1;
    let lines = [
        format!(r#"{{"pk": "{PK}", "msg": "", "sig": "{SIG}"}}"#),
        format!(
            r#"{{"pk": "{PK}", "msg": "", "sig": "{}"}}"#,
            hex::encode(&flipped)
        ),
        "this is not json".to_string(),
        format!(r#"{{"pk": "{}", "msg": "", "sig": "{SIG}"}}"#, &PK[..62]),
        format!(r#"{{"pk": "{PK}", "msg": "00", "sig": "{SIG}"}}"#),
        format!(r#"{{"pk": "{PK}", "msg": "", "sig": "{SIG}"}}"#),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let gpu_required = std::env::var("TALLY_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let mut answers = Vec::new();
    for backend in ["cpu", "auto", "gpu"] {
        let output = sigcheck(backend, &input);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if backend == "gpu" && !output.status.success() && !gpu_required {
            eprintln!("notice: no GPU adapter, gpu backend not checked: {stderr}");
            continue;
        }
        assert!(output.status.success(), "{backend}: {stderr}");
        let out: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(out.len(), lines.len(), "{backend}: one answer per line");
        assert_eq!(out[0]["valid"], true, "{backend}");
        assert_eq!(out[1]["valid"], false, "{backend}: flipped signature bit");
        assert_eq!(out[2]["line"], 3, "{backend}");
        assert!(out[2]["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON object"));
        assert_eq!(out[3]["line"], 4, "{backend}");
        assert!(out[3]["error"]
            .as_str()
            .unwrap()
            .contains("pk must be 32 bytes"));
        assert_eq!(out[4]["valid"], false, "{backend}: another message");
        assert_eq!(
            out[5]["valid"], true,
            "{backend}: lines after errors still run"
        );
        answers.push((backend, out));
    }
    for (backend, out) in &answers[1..] {
        assert_eq!(out, &answers[0].1, "{backend} answers as cpu does");
    }
}

#[test]
fn sigcheck_names_a_missing_file_and_an_unknown_backend() {
    let output = sigcheck("cpu", std::path::Path::new("/nonexistent/sigs.jsonl"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open /nonexistent/sigs.jsonl"));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.jsonl");
    std::fs::write(&input, "").unwrap();
    let output = sigcheck("tpu", &input);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("tpu"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
