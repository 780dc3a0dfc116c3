//! Resource usage of a process from /proc, for the benchmarks.

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (field(11) + field(12)) / hz
}

/// (VmRSS, VmHWM) of `pid`, in KiB: resident now and at its peak.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let kib = status_kib(pid);
    (kib("VmRSS:"), kib("VmHWM:"))
}

/// (RssAnon, RssFile) of `pid`, in KiB: heap, stacks and other private memory, and mapped files
/// (the binary's own code and data among them).
pub fn rss_parts_kib(pid: u32) -> (u64, u64) {
    let kib = status_kib(pid);
    (kib("RssAnon:"), kib("RssFile:"))
}

/// A reader of the KiB fields of `/proc/<pid>/status` (0 for a field it does not have).
fn status_kib(pid: u32) -> impl Fn(&str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    move |key| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// (open file descriptors, of which sockets) of `pid`.
pub fn open_fds(pid: u32) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let (mut all, mut sockets) = (0, 0);
    for entry in dir.flatten() {
        all += 1;
        if std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        {
            sockets += 1;
        }
    }
    (all, sockets)
}

/// Threads of `pid`.
pub fn threads(pid: u32) -> u64 {
    status_kib(pid)("Threads:")
}
