//! The node's background threads (the history indexer, the checkpoint writer) run at the
//! lowest scheduling priority, so that on a machine with few cores they never keep a
//! pipeline thread (signature stage, executor, log, the network's threads) waiting for a
//! core: the scheduler gives such a thread the core as soon as it has work. They are not
//! starved: a nice-19 thread still gets its small share of a busy core, and every idle
//! cycle (SCHED_IDLE could leave them without any on a machine kept busy by other work, and
//! the log stage waits for the checkpoint writer when two checkpoints fall due together).
//!
//! The one unsafe call of the node: `setpriority(2)` for the calling thread.
#![allow(unsafe_code)]

/// The nice value of background threads: the lowest priority.
pub(crate) const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`]. On Linux a thread has a
/// priority of its own (`setpriority` with its thread id); elsewhere nothing changes. A
/// refusal is logged and the thread goes on at its priority.
pub(crate) fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority read and write no memory of this process.
        let code = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE)
        };
        if code != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "a background thread keeps its priority"
            );
        }
    }
}

/// The calling thread's nice value (Linux; `None` elsewhere or on error), for tests.
#[cfg(test)]
pub(crate) fn this_thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        // after the command name in parentheses: state is field 3, nice field 19
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split(' ').nth(16)?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_runs_at_the_lowest_priority_and_others_keep_theirs() {
        let before = this_thread_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            this_thread_nice()
        })
        .join()
        .unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(lowered, Some(BACKGROUND_NICE));
            assert_eq!(
                this_thread_nice(),
                before,
                "only the calling thread is lowered"
            );
        }
    }
}
