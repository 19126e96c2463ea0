//! Puts the versions of the compared crates (from the workspace's Cargo.lock) into the
//! binary, so the report's header names what was measured.

fn main() {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    println!("cargo:rerun-if-changed={lock_path}");
    let lock = std::fs::read_to_string(lock_path).unwrap_or_default();
    for (krate, var) in [
        ("zocket", "ZOCKET"),
        ("zeromq", "ZEROMQ"),
        ("rzmq", "RZMQ"),
        ("omq-tokio", "OMQ"),
        ("tokio", "TOKIO"),
    ] {
        let needle = format!("name = \"{krate}\"\nversion = \"");
        let version = lock
            .find(&needle)
            .map(|at| &lock[at + needle.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        println!("cargo:rustc-env=COMPARE_VERSION_{var}={version}");
    }
}
