//! Process-wide tuning of the daemon itself, kept here because it needs the one audited FFI
//! call the rest of wisp must not make.
//!
//! glibc gives each thread that allocates under contention its own malloc arena (up to 8 per
//! core) and keeps freed memory in them. For a daemon whose peaks are short (a LIST of 1,000
//! Services allocates ~15 MiB and frees it at once) that retained memory, not live data, was
//! most of the resident size in the control-plane benchmark: ~140 MiB after a few LISTs against
//! ~60 MiB with a couple of arenas, at no measurable cost in throughput on 2 cores.

/// Caps glibc's malloc arenas at `max` for this process. Call before starting threads. A no-op
/// on other C libraries.
pub fn limit_malloc_arenas(max: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX with a positive value
        // is documented as valid at any time, and we call it before other threads exist.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, max) };
        if ok != 1 {
            tracing::debug!(max, "mallopt(M_ARENA_MAX) was refused");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = max;
}
