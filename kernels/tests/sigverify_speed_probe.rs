#[path = "../../bench-harness/src/sigverify.rs"]
mod sigverify;
#[test]
#[ignore]
fn probe() {
    let sizes: Vec<usize> = std::env::var("SIZES").unwrap_or("256,4096".into()).split(',').map(|s| s.parse().unwrap()).collect();
    for f in sigverify::measure(&sizes, false) { println!("{f:?}"); }
}
