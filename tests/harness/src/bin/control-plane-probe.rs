//! Test helper for `tests/teardown.rs`: starts the shared control plane exactly as a test binary does,
//! prints `<dir> <pid> <pid>...` on one line, then ends the way its argument says: `panic`, or `wait`
//! (until the test kills it with a signal).

use std::io::Write;

fn main() {
    // Ctrl-C as at a terminal: a shell running us in the background (CI under `nohup … &`) hands
    // SIGINT down ignored, and an ignored signal stays ignored across exec.
    // SAFETY: restoring the default disposition before any other thread exists.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    let mode = std::env::args().nth(1).unwrap_or_default();
    // The harness alone: no CRD is needed to prove teardown.
    let cp = wfe_harness::shared(|_| Ok(Vec::new()));
    let pids: Vec<String> = cp.pids().iter().map(u32::to_string).collect();
    println!("{} {}", cp.dir.display(), pids.join(" "));
    let _ = std::io::stdout().flush();
    match mode.as_str() {
        "panic" => panic!("probe: panicking with a live control plane, as a failing test would"),
        _ => loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        },
    }
}
